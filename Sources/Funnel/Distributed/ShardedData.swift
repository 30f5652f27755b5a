import Foundation

/// The training rows of a sharded data-parallel run. Every rank reads only its shard of the
/// file (`ReadOptions.shard`: data rows `i` with `i % ranks == rank`) and encodes the features of
/// those rows; the ranks then share their rows' labels, so each holds the *label view* — every
/// row's labels in file order, which is exactly the table one process would hold, minus the
/// features. Sample spaces, negative sampling, downsampling and the per-epoch shuffle run on
/// the label view identically on every rank (and as in one process); each rank computes the
/// rows of every global batch that it holds.
public final class ShardView: @unchecked Sendable {
    /// This rank's rows, with features.
    public let local: EncodedDataset
    public let communicator: Communicator
    /// Per row of the label view: its index in `local`, or -1 when another rank holds it.
    public let localIndex: [Int32]

    init(local: EncodedDataset, communicator: Communicator, localIndex: [Int32]) {
        self.local = local
        self.communicator = communicator
        self.localIndex = localIndex
    }

    /// The label view of `local` across the ranks: no features, rows in the order of their
    /// `orderKeys` (default: source row — file order, one process's order in memory; a streamed
    /// buffer passes its group order).
    static func labelView(of local: EncodedDataset, communicator comm: Communicator, orderKeys: [Int64]? = nil) throws -> EncodedDataset {
        // One rank holds every row: its rows are the view.
        guard comm.isDistributed else { return local }
        guard let click = local.click, let conversion = local.conversion else { throw FunnelError("training data has no labels") }
        // Per row: its order key, source row, click and conversion, and its request's key when
        // the rows carry requests (so the view batches whole requests as one process does).
        let values = local.requests == nil ? 4 : 5
        var message = ByteWriter()
        message.bytes.reserveCapacity(8 * values * local.rowCount)
        for i in 0..<local.rowCount {
            for v in [orderKeys?[i] ?? Int64(local.sourceRows[i]), Int64(local.sourceRows[i]), Int64(click[i]), Int64(conversion[i])] { message.put(v) }
            if let r = local.requests { message.put(r.keys[i]) }
        }
        let all = try comm.allgatherBytes(message.bytes, kind: .control)
        var rows: [(key: Int64, source: Int32, rank: Int32, index: Int32, click: Float, conversion: Float, request: Int64)] = []
        for (r, bytes) in all.enumerated() {
            guard bytes.count % (8 * values) == 0 else { throw FunnelError("rank \(r) sent a malformed label message") }
            try bytes.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s label message")
                for k in 0..<(bytes.count / (8 * values)) {
                    let v = try (0..<values).map { _ in try cursor.read(Int64.self) }
                    rows.append((v[0], Int32(truncatingIfNeeded: v[1]), Int32(r), Int32(k), Float(v[2]), Float(v[3]), values == 5 ? v[4] : 0))
                }
            }
        }
        rows.sort { ($0.key, $0.rank) < ($1.key, $1.rank) }
        let me = Int32(comm.rank)
        let view = ShardView(local: local, communicator: comm, localIndex: rows.map { $0.rank == me ? $0.index : -1 })
        // The view's request keys only group rows; its fields are the local rows' (no feature here).
        return EncodedDataset(rowCount: rows.count, fields: 0, denseCount: 0, ids: [], dense: [], click: rows.map(\.click),
                              conversion: rows.map(\.conversion), sourceRows: rows.map(\.source), shard: view,
                              requests: local.requests.map { _ in EncodedRequests(keys: rows.map(\.request), fields: []) })
    }

    /// The shard of the label view's subset `rows` (new weights as `EncodedDataset.subset`).
    func subset(_ rows: [Int32], weights: [Float]?) -> ShardView {
        var localRows: [Int32] = [], localWeights: [Float] = [], index = [Int32](repeating: -1, count: rows.count)
        for (k, g) in rows.enumerated() where localIndex[Int(g)] >= 0 {
            index[k] = Int32(localRows.count)
            localRows.append(localIndex[Int(g)])
            localWeights.append(weights?[k] ?? 1)
        }
        return ShardView(local: local.subset(localRows, weights: weights == nil ? nil : localWeights), communicator: communicator,
                         localIndex: index)
    }

    /// pCTR of label-view rows `rows` on every rank: each rank predicts the rows it holds, the
    /// ranks sum the scattered results.
    func predictCTR(_ network: FunnelNetwork, rows: [Int32]) throws -> [Float] {
        var mine: [Int32] = [], at: [Int] = []
        for (k, g) in rows.enumerated() where localIndex[Int(g)] >= 0 { mine.append(localIndex[Int(g)]); at.append(k) }
        let predicted = try network.predictCTRCollectively(local, rows: mine)
        var out = [Float](repeating: 0, count: rows.count)
        for (k, p) in zip(at, predicted) { out[k] = p }
        try out.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0.baseAddress!, count: rows.count, kind: .control) }
        return out
    }
}

extension FeatureSchema.Accumulator {
    /// The accumulator of every rank's rows together (counts summed, dense moments combined
    /// pairwise in rank order), identical on every rank.
    func merged(across comm: Communicator) throws -> FeatureSchema.Accumulator {
        guard comm.isDistributed else { return self }
        var out = FeatureSchema.Accumulator(layout: layout)
        for (r, message) in try comm.allgatherBytes(message()).enumerated() {
            try message.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s vocabulary message")
                try out.add(from: &cursor)
            }
        }
        return out
    }
}

extension FeatureSchema.Accumulator {
    /// This rank's counts (per field: sorted keys and their counts), dense moments and text tokens.
    private func message() throws -> [UInt8] {
        var w = ByteWriter()
        w.putCount(rows); w.putCount(clicks); w.putCount(conversions)
        for field in counts {
            w.putCount(field.count)
            for (k, n) in field.sorted(by: { $0.key < $1.key }) { w.put(k); w.putCount(n) }
        }
        for m in moments { w.put(m.n); w.put(m.mean); w.put(m.m2) }
        // Latest day per key (a day column), merged by maximum.
        w.putCount(lastDays == nil ? 0 : 1)
        for field in lastDays ?? [] {
            w.putCount(field.count)
            for (k, d) in field.sorted(by: { $0.key < $1.key }) { w.put(k); w.putCount(Int(d) - Int(Int32.min)) }
        }
        w.putCount(Int(maxDay) - Int(Int32.min))
        let tokens = try JSONEncoder().encode(Dictionary(uniqueKeysWithValues: textTokens.map { (String($0.key), $0.value) }))
        w.putCount(tokens.count)
        w.bytes.append(contentsOf: tokens)
        return w.bytes
    }

    /// One rank's latest day per key: the later of the two days wins.
    private mutating func addDays(from cursor: inout ByteCursor) throws {
        if try cursor.readCount(elementBytes: 0) == 1 {
            if lastDays == nil { lastDays = Array(repeating: [:], count: counts.count) }
            for k in 0..<counts.count {
                for _ in 0..<(try cursor.readCount(elementBytes: 16)) {
                    see(try cursor.read(Int64.self), day: Int32(clamping: try cursor.read(Int.self) + Int(Int32.min)), field: k)
                }
            }
        }
        maxDay = max(maxDay, Int32(clamping: try cursor.read(Int.self) + Int(Int32.min)))
    }

    /// Adds one rank's `message()`: counts summed, dense moments combined pairwise (Chan et al.).
    private mutating func add(from cursor: inout ByteCursor) throws {
        rows += try cursor.read(Int.self); clicks += try cursor.read(Int.self); conversions += try cursor.read(Int.self)
        for k in 0..<counts.count {
            for _ in 0..<(try cursor.readCount(elementBytes: 16)) { counts[k][try cursor.read(Int64.self), default: 0] += try cursor.read(Int.self) }
        }
        for k in 0..<moments.count {
            let b = (n: try cursor.read(Double.self), mean: try cursor.read(Double.self), m2: try cursor.read(Double.self))
            if let both = FeatureSchema.Accumulator.combined(moments[k], b) { moments[k] = both }
        }
        try addDays(from: &cursor)
        let t = try cursor.readCount(elementBytes: 1)
        let text = try JSONDecoder().decode([String: String].self, from: Data(try cursor.region(t)))
        for (k, v) in text { if let key = Int64(k) { textTokens[key] = textTokens[key] ?? v } }
    }
}

extension ReadReport {
    /// The report of the whole file from every rank's report of its shard: inconsistent rows and
    /// skipped rows summed per kind (the first example of a kind from the lowest rank with one);
    /// every rank scans every line, so the line count is anyone's.
    func merged(across comm: Communicator) throws -> ReadReport {
        guard comm.isDistributed else { return self }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var out = self
        out.inconsistentDropped = 0; out.inconsistentKept = 0; out.skipped = [:]; out.firstSkipped = [:]
        for bytes in try comm.allgatherBytes(Array(try enc.encode(self))) {
            let r = try JSONDecoder().decode(ReadReport.self, from: Data(bytes))
            out.inconsistentDropped += r.inconsistentDropped
            out.inconsistentKept += r.inconsistentKept
            for (kind, n) in r.skipped { out.skipped[kind, default: 0] += n }
            for (kind, example) in r.firstSkipped where out.firstSkipped[kind] == nil { out.firstSkipped[kind] = example }
        }
        return out
    }
}
