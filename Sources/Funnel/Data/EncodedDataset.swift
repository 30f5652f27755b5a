/// Model-ready rows: global embedding ids `[rows × fields]`, standardised dense values
/// `[rows × denseCount]` and labels, each one contiguous array.
public final class EncodedDataset {
    public let rowCount: Int
    public let fields: Int
    public let denseCount: Int
    public let ids: [Int32]
    public let dense: [Float]
    /// Labels; nil when the file had none (prediction input).
    public let click: [Float]?
    public let conversion: [Float]?
    public let sourceRows: [Int32]
    /// Per-row sample weights (nil: all 1), e.g. from negative downsampling.
    public let weights: [Float]?
    /// Multi-valued fields' values, one CSR bag per such field (empty: every field single-valued).
    public let bags: [EncodedBag]
    /// A sharded data-parallel run's label view (`fields` 0): this rank's rows with features,
    /// and where each row of the view sits among them.
    public let shard: ShardView?
    /// The request each row belongs to and the request's fields (nil: no request grouping).
    public let requests: EncodedRequests?

    public init(rowCount: Int, fields: Int, denseCount: Int, ids: [Int32], dense: [Float],
                click: [Float]?, conversion: [Float]?, sourceRows: [Int32], weights: [Float]? = nil, bags: [EncodedBag] = [],
                shard: ShardView? = nil, requests: EncodedRequests? = nil) {
        precondition(requests.map { $0.keys.count == rowCount && $0.fields.allSatisfy((0..<fields).contains) } ?? true)
        self.shard = shard
        self.requests = requests
        precondition(bags.allSatisfy { $0.offsets.count == rowCount + 1 && (0..<fields).contains($0.field) })
        self.bags = bags
        precondition(ids.count == rowCount * fields && dense.count == rowCount * denseCount)
        self.rowCount = rowCount
        self.fields = fields
        self.denseCount = denseCount
        self.ids = ids
        self.dense = dense
        self.click = click
        self.conversion = conversion
        self.sourceRows = sourceRows
        self.weights = weights
    }

    /// The rows of several datasets encoded with one schema, one after another.
    public static func concatenated(_ parts: [EncodedDataset]) -> EncodedDataset {
        let first = parts[0]
        let labels = parts.allSatisfy(\.hasLabels), weighted = parts.contains { $0.weights != nil }
        // Exact capacities (no doubling slack): a streamed shuffle buffer is joined here.
        func joined<T>(_ arrays: [[T]]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(arrays.reduce(0) { $0 + $1.count })
            for a in arrays { out.append(contentsOf: a) }
            return out
        }
        return EncodedDataset(rowCount: parts.reduce(0) { $0 + $1.rowCount }, fields: first.fields, denseCount: first.denseCount,
                              ids: joined(parts.map(\.ids)), dense: joined(parts.map(\.dense)),
                              click: labels ? joined(parts.map { $0.click! }) : nil, conversion: labels ? joined(parts.map { $0.conversion! }) : nil,
                              sourceRows: joined(parts.map(\.sourceRows)),
                              weights: weighted ? joined(parts.map { $0.weights ?? [Float](repeating: 1, count: $0.rowCount) }) : nil,
                              bags: first.bags.indices.map { b in EncodedBag.concatenated(parts.map { $0.bags[b] }) },
                              requests: EncodedRequests.concatenated(parts.map(\.requests)))
    }

    /// A subset of rows, in the given order, keeping labels, weights and source positions.
    public func subset(_ rows: [Int32], weights newWeights: [Float]? = nil) -> EncodedDataset {
        var ids = [Int32](), dense = [Float](), click = [Float](), conv = [Float](), src = [Int32](), w = [Float]()
        ids.reserveCapacity(rows.count * fields); dense.reserveCapacity(rows.count * denseCount)
        for (k, r32) in rows.enumerated() {
            let r = Int(r32)
            ids.append(contentsOf: self.ids[(r * fields)..<((r + 1) * fields)])
            dense.append(contentsOf: self.dense[(r * denseCount)..<((r + 1) * denseCount)])
            if let c = self.click, let v = self.conversion { click.append(c[r]); conv.append(v[r]) }
            src.append(sourceRows[r])
            w.append((newWeights?[k] ?? 1) * (self.weights?[r] ?? 1))
        }
        let anyWeights = newWeights != nil || self.weights != nil
        return EncodedDataset(rowCount: rows.count, fields: fields, denseCount: denseCount, ids: ids, dense: dense,
                              click: hasLabels ? click : nil, conversion: hasLabels ? conv : nil, sourceRows: src,
                              weights: anyWeights ? w : nil, bags: bags.map { $0.subset(rows) },
                              shard: shard?.subset(rows, weights: newWeights), requests: requests?.subset(rows))
    }

    /// Negative downsampling with re-weighting (esmm-ablation §2.1.1): keeps every clicked row
    /// and each unclicked row with probability 1/`factor`, weighting the kept unclicked rows by
    /// `factor`, so weighted sums (losses, AUC masses) stay unbiased for the full data.
    public func downsamplingNegatives(factor: Double, seed: UInt64) -> EncodedDataset {
        guard let (rows, w) = downsampledRows(factor: factor, seed: seed) else { return self }
        return subset(rows, weights: w)
    }

    /// The rows `downsamplingNegatives` keeps and their weights; nil when it keeps all.
    public func downsampledRows(factor: Double, seed: UInt64) -> (rows: [Int32], weights: [Float])? {
        guard factor > 1, let click else { return nil }
        var rng = RandomSource(seed: seed, stream: 77)
        var rows: [Int32] = [], w: [Float] = []
        let keep = 1 / factor
        for i in 0..<rowCount {
            if click[i] == 1 { rows.append(Int32(i)); w.append(1) }
            else if rng.uniform() < keep { rows.append(Int32(i)); w.append(Float(factor)) }
        }
        return (rows, w)
    }

    /// The most values a row has over all multi-valued fields together (sizes gradient buffers).
    public var maxBagValues: Int {
        guard !bags.isEmpty else { return 0 }
        let perRequest = requests?.perRequest
        return (0..<rowCount).map { r in
            let own = bags.reduce(0) { $0 + Int($1.offsets[r + 1] - $1.offsets[r]) }
            guard let p = perRequest else { return own }
            let q = Int(p.rowRequest[r])
            return own + p.bags.reduce(0) { $0 + Int($1.offsets[q + 1] - $1.offsets[q]) }
        }.max() ?? 0
    }

    /// Row weights (1 where none are set).
    public func weight(_ i: Int) -> Float { weights?[i] ?? 1 }

    public var hasLabels: Bool { click != nil }

    public var clickCount: Int { Int(click?.reduce(0, +) ?? 0) }
    public var conversionCount: Int {
        guard let click, let conversion else { return 0 }
        var n = 0
        for i in 0..<rowCount where click[i] == 1 && conversion[i] == 1 { n += 1 }
        return n
    }

    /// Indices of clicked rows (the CVR sample space).
    public var clickedRows: [Int32] {
        guard let click else { return [] }
        var out: [Int32] = []
        for i in 0..<rowCount where click[i] == 1 { out.append(Int32(i)) }
        return out
    }
}
