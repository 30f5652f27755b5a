/// A table read from disk but not yet encoded: categorical keys, raw dense values
/// (NaN marks an empty cell) and 0/1 labels, column-major.
public struct RawTable {
    public var layout: TableLayout
    public var rowCount = 0
    public var keys: [[Int64]]
    public var dense: [[Float]]
    public var click: [Float] = []
    public var conversion: [Float] = []
    public var hasLabels: Bool
    /// 0-based index of each kept row among the file's data rows, to align side files (truth).
    public var sourceRows: [Int32] = []
    /// Values of `ReadOptions.dayColumn`, when one was named.
    public var days: [Int] = []
    /// Original text of non-integer categorical values, by key (integer keys are their own text).
    public var textTokens: [Int64: String] = [:]
    public var report: ReadReport
    /// Multi-valued columns' values, one CSR bag per `layout.multiValued` column (their slot in
    /// `keys` holds the empty key).
    public var bags: [RawBag]
    /// The request each row belongs to and the request's columns (nil: rows are independent).
    public var requests: RequestKeys?

    public init(layout: TableLayout, hasLabels: Bool, file: String) {
        self.layout = layout
        self.hasLabels = hasLabels
        keys = Array(repeating: [], count: layout.categorical.count)
        dense = Array(repeating: [], count: layout.dense.count)
        bags = Array(repeating: RawBag(), count: layout.multiValued.count)
        report = ReadReport(file: file)
    }

    /// Appends the values of multi-valued column `b` for the row about to be appended.
    public mutating func appendBag(_ b: Int, keys values: [Int64], weights: [Float]) {
        bags[b].keys.append(contentsOf: values)
        bags[b].weights.append(contentsOf: weights)
        bags[b].offsets.append(Int32(bags[b].keys.count))
    }

    /// Appends one decoded row (keys and dense values in layout order). Every reader — the
    /// file reader and the server's request decoder — builds tables through here.
    public mutating func appendRow(keys rowKeys: [Int64], dense rowDense: [Float], labels: (click: Float, conversion: Float)?,
                                   day: Int?, sourceRow: Int32) {
        if let labels { click.append(labels.click); conversion.append(labels.conversion) }
        for k in 0..<rowDense.count { dense[k].append(rowDense[k]) }
        for k in 0..<rowKeys.count { keys[k].append(rowKeys[k]) }
        sourceRows.append(sourceRow)
        if let day { days.append(day) }
        rowCount += 1
    }

    /// The rows whose day satisfies `keep` (all rows' days must have been read).
    public func filter(days keep: (Int) -> Bool) -> RawTable {
        rows(where: days.map(keep))
    }

    /// The rows whose flag in `keep` is set, in order (every column, labels, days and source rows).
    func rows(where keep: [Bool]) -> RawTable {
        rows((0..<rowCount).filter { keep[$0] })
    }

    /// The rows at `idx`, in that order.
    func rows(_ idx: [Int]) -> RawTable {
        var out = RawTable(layout: layout, hasLabels: hasLabels, file: report.file)
        out.textTokens = textTokens
        out.report = report
        out.keys = keys.map { col in idx.map { col[$0] } }
        out.dense = dense.map { col in idx.map { col[$0] } }
        if hasLabels { out.click = idx.map { click[$0] }; out.conversion = idx.map { conversion[$0] } }
        if !days.isEmpty { out.days = idx.map { days[$0] } }
        out.sourceRows = idx.map { sourceRows[$0] }
        out.requests = requests?.rows(idx)
        out.bags = bags.map { bag in
            var sub = RawBag()
            for r in idx {
                let range = Int(bag.offsets[r])..<Int(bag.offsets[r + 1])
                sub.keys.append(contentsOf: bag.keys[range])
                sub.weights.append(contentsOf: bag.weights[range])
                sub.offsets.append(Int32(sub.keys.count))
            }
            return sub
        }
        out.rowCount = idx.count
        out.report.rowsKept = out.rowCount
        return out
    }
}

/// One multi-valued column's raw values, CSR: row r's are `keys[offsets[r]..<offsets[r+1]]`
/// with `weights` (1 where a cell gave none).
public struct RawBag: Sendable, Equatable {
    public var offsets: [Int32] = [0]
    public var keys: [Int64] = []
    public var weights: [Float] = []
    public init() {}
}

extension RawTable {
    /// This rank's rows (by source row), or the table itself without a shard.
    func shard(_ shard: ReadOptions.Shard?) -> RawTable {
        guard let shard else { return self }
        return rows(where: sourceRows.map { shard.owns(Int($0)) })
    }

    /// The most values a row has over all multi-valued columns together.
    public var maxBagValues: Int {
        guard !bags.isEmpty else { return 0 }
        var most = 0
        let perRequest = requests?.perRequest
        for r in 0..<rowCount {
            var n = bags.reduce(0) { $0 + Int($1.offsets[r + 1] - $1.offsets[r]) }
            if let p = perRequest {
                let q = Int(p.rowRequest[r])
                n += p.bags.reduce(0) { $0 + Int($1.offsets[q + 1] - $1.offsets[q]) }
            }
            most = max(most, n)
        }
        return most
    }

    /// Multi-valued values held: the rows' own and, once each, the request-level ones.
    var bagValuesHeld: Int {
        bags.reduce(0) { $0 + $1.keys.count } + (requests?.perRequest?.bags.reduce(0) { $0 + $1.keys.count } ?? 0)
    }
}

extension RawBag {
    /// Appends another bag's rows after this one's.
    mutating func append(_ other: RawBag) {
        let base = Int32(keys.count)
        offsets.append(contentsOf: other.offsets.dropFirst().map { $0 + base })
        keys.append(contentsOf: other.keys)
        weights.append(contentsOf: other.weights)
    }
}
