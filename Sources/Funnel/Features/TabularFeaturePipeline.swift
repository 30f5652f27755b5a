import Foundation

/// Categories of one column in frequency-rank order: code 1 = most frequent, 0 = unseen or empty.
public struct LabelEncoder: Codable, Equatable, Sendable {
    public private(set) var keys: [Int64]
    private var lookup: [Int64: Int32] = [:]

    enum CodingKeys: String, CodingKey { case keys }

    /// Ranks the keys of `values` by count (ties by key, so the order is deterministic); the empty
    /// cell is never a category of its own.
    public init(fitting values: [Int64]) {
        self.init(counts: Self.counts(values))
    }

    /// Ranks keys by their counts (of all rows: one rank's counts merged with the others').
    public init(counts: [Int64: Int]) {
        keys = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
        buildLookup()
    }

    public static func counts(_ values: [Int64]) -> [Int64: Int] {
        var counts: [Int64: Int] = [:]
        for v in values where v != CategoryKey.empty { counts[v, default: 0] += 1 }
        return counts
    }

    /// The encoder of every rank's rows: per-key counts all-gathered and summed.
    public static func fitted(_ values: [Int64], _ comm: Communicator) throws -> LabelEncoder {
        guard comm.isDistributed else { return LabelEncoder(fitting: values) }
        let mine = counts(values)
        let keys = Array(mine.keys)
        var merged: [Int64: Int] = [:]
        for (k, c) in zip(try comm.allgather(values: keys), try comm.allgather(values: keys.map { Int64(mine[$0]!) })) {
            for (key, n) in zip(k, c) { merged[key, default: 0] += Int(n) }
        }
        return LabelEncoder(counts: merged)
    }

    public init(from decoder: Decoder) throws {
        keys = try decoder.container(keyedBy: CodingKeys.self).decode([Int64].self, forKey: .keys)
        buildLookup()
    }

    private mutating func buildLookup() {
        lookup = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, Int32($0 + 1)) })
    }

    /// The code of `key`, or nil when unseen in training (or empty).
    public func code(_ key: Int64) -> Int32? { lookup[key] }

    public static func == (a: LabelEncoder, b: LabelEncoder) -> Bool { a.keys == b.keys }
}

/// Per value of a categorical column, statistics of a numeric column over the training rows.
public struct GroupStatisticTable: Codable, Equatable, Sendable {
    public var spec: GroupStatisticSpec
    public private(set) var keys: [Int64]
    /// `values[s][i]`: statistic `spec.statistics[s]` of group `keys[i]`.
    public private(set) var values: [[Float]]
    private var lookup: [Int64: Int] = [:]

    enum CodingKeys: String, CodingKey { case spec, keys, values }

    public init(spec: GroupStatisticSpec, groups: [Int64], numbers: [Float]) {
        self.spec = spec
        var members: [Int64: [Float]] = [:]
        for (g, x) in zip(groups, numbers) where !x.isNaN { members[g, default: []].append(x) }
        // Each group's values are sorted before any sum, so the statistics do not depend on the
        // order rows arrive in (one machine's, or a rank's after the by-key exchange).
        keys = members.keys.sorted()
        values = spec.statistics.map { _ in [] }
        for k in keys {
            let xs = members[k]!.sorted()
            let n = Double(xs.count)
            let mean = xs.reduce(0.0) { $0 + Double($1) } / n
            let variance = xs.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
            let median = xs.count % 2 == 1 ? Double(xs[xs.count / 2]) : (Double(xs[xs.count / 2 - 1]) + Double(xs[xs.count / 2])) / 2
            for (s, stat) in spec.statistics.enumerated() {
                switch stat {
                case .mean: values[s].append(Float(mean))
                case .variance: values[s].append(Float(variance))
                case .median: values[s].append(Float(median))
                }
            }
        }
        buildLookup()
    }

    /// Tables of disjoint groups put together (each rank's share after the by-key exchange).
    init(spec: GroupStatisticSpec, merging parts: [(keys: [Int64], values: [[Float]])]) {
        self.spec = spec
        var rows: [(Int64, [Float])] = []
        for p in parts { for (i, k) in p.keys.enumerated() { rows.append((k, p.values.map { $0[i] })) } }
        rows.sort { $0.0 < $1.0 }
        keys = rows.map(\.0)
        values = spec.statistics.indices.map { s in rows.map { $0.1[s] } }
        buildLookup()
    }

    /// The table of every rank's rows, computed as one machine does: each (group, value) pair
    /// goes to the rank owning its group (key mod ranks), which computes its groups' statistics
    /// exactly (medians need every value of a group in one place); the per-group results are
    /// then all-gathered. Each rank sends its rows' pairs once and receives 1/N of them.
    static func fitted(spec: GroupStatisticSpec, groups: [Int64], numbers: [Float], _ comm: Communicator) throws -> GroupStatisticTable {
        guard comm.isDistributed else { return GroupStatisticTable(spec: spec, groups: groups, numbers: numbers) }
        var outKeys = [[Int64]](repeating: [], count: comm.size), outValues = [[Float]](repeating: [], count: comm.size)
        for (g, x) in zip(groups, numbers) where !x.isNaN {
            let owner = Int(UInt64(bitPattern: g) % UInt64(comm.size))
            outKeys[owner].append(g)
            outValues[owner].append(x)
        }
        let blocks = (0..<comm.size).map { outKeys[$0].withUnsafeBytes { Array($0) } + outValues[$0].withUnsafeBytes { Array($0) } }
        var myGroups: [Int64] = [], myNumbers: [Float] = []
        for block in try comm.exchange(blocks) {
            let n = block.count / 12
            myGroups += Communicator.values(Array(block[0..<(8 * n)])) as [Int64]
            myNumbers += Communicator.values(Array(block[(8 * n)...])) as [Float]
        }
        let mine = GroupStatisticTable(spec: spec, groups: myGroups, numbers: myNumbers)
        let allKeys = try comm.allgather(values: mine.keys), allValues = try comm.allgather(values: mine.values.flatMap { $0 })
        let parts = zip(allKeys, allValues).map { k, v in
            (keys: k, values: spec.statistics.indices.map { s in Array(v[(s * k.count)..<((s + 1) * k.count)]) })
        }
        return GroupStatisticTable(spec: spec, merging: parts)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        spec = try c.decode(GroupStatisticSpec.self, forKey: .spec)
        keys = try c.decode([Int64].self, forKey: .keys)
        values = try c.decode([[Float]].self, forKey: .values)
        guard values.count == spec.statistics.count, values.allSatisfy({ $0.count == keys.count }) else {
            throw DecodingError.dataCorruptedError(forKey: .values, in: c, debugDescription: "group statistics do not match their keys")
        }
        buildLookup()
    }

    private mutating func buildLookup() {
        lookup = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
    }

    public func index(of key: Int64) -> Int? { lookup[key] }

    public static func == (a: GroupStatisticTable, b: GroupStatisticTable) -> Bool {
        a.spec == b.spec && a.keys == b.keys && a.values == b.values
    }
}

/// One fitted Beta target encoder: which categorical source, against which target.
public struct TargetEncoderEntry: Codable, Equatable, Sendable {
    public var source: String
    public var target: FunnelTarget
    public var encoder: BetaTargetEncoder
}

/// The fitted feature transform of the GBDT path: a raw table in, LightGBM's feature matrix out.
///
/// Column order: kept numeric columns, categorical codes, day of week, cross codes, target
/// encodings (source × target × statistic), group statistics. Everything is fitted on the
/// training rows only; training rows get out-of-fold target encodings (no row sees its own label),
/// every later row the encoders fitted on all training rows.
public struct TabularFeaturePipeline: Codable, Equatable, Sendable {
    public static let crossSeparator = "*"

    public var config: TabularFeatureConfig
    public var layout: TableLayout
    public var hasDay: Bool
    public var numeric: [String]
    public var categorical: [String]
    public var labelEncoders: [String: LabelEncoder]
    public var targetEncoders: [TargetEncoderEntry]
    public var groupTables: [GroupStatisticTable]
    public var featureNames: [String]

    enum CodingKeys: String, CodingKey {
        case config, layout, numeric, categorical, hasDay = "has_day", labelEncoders = "label_encoders"
        case targetEncoders = "target_encoders", groupTables = "group_statistics", featureNames = "feature_names"
    }

    public var crossNames: [String] { config.crosses.map { $0.joined(separator: Self.crossSeparator) } }

    /// Fits on a labelled training table and returns the training matrix (out-of-fold encodings).
    /// With a communicator, `table` holds this rank's rows — positions `partition.positions` of
    /// one machine's table — and every statistic (frequency ranks, group statistics, target
    /// encoders' n and N per category and fold) is aggregated over the ranks, folds assigned by
    /// position: each rank gets exactly one machine's pipeline and its own rows of one
    /// machine's matrix.
    public static func fit(_ table: RawTable, config: TabularFeatureConfig, seed: UInt64,
                           communicator comm: Communicator = .single, partition given: RowPartition? = nil) throws
        -> (pipeline: TabularFeaturePipeline, matrix: FeatureMatrix)
    {
        let partition = given ?? RowPartition(rows: table.rowCount)
        precondition(partition.count == table.rowCount)
        guard table.hasLabels else { throw DataError(file: table.report.file, "training rows need both label columns") }
        let file = table.report.file
        let layout = table.layout
        let (categorical, numeric) = try keptColumns(config, layout: layout, file: file)
        let te = config.targetEncoding
        // A rank may hold no rows at all; the day column is there when any rank read one.
        let hasDay = try comm.maximum(table.days.isEmpty ? 0 : 1) == 1
        var p = TabularFeaturePipeline(config: config, layout: layout, hasDay: hasDay, numeric: numeric,
                                       categorical: categorical, labelEncoders: [:], targetEncoders: [],
                                       groupTables: [], featureNames: [])
        let sources = categorical + p.crossNames
        let teSources = te.enabled ? (te.columns ?? sources) : []
        for name in teSources where !sources.contains(name) {
            throw DataError(file: file, column: name, "named in target_encoding.columns but not a kept categorical column or cross")
        }
        for name in config.labelEncode ? sources : p.crossNames {
            p.labelEncoders[name] = try LabelEncoder.fitted(p.keys(of: name, in: table), comm)
        }
        for spec in config.groupStatistics {
            p.groupTables.append(try GroupStatisticTable.fitted(spec: spec, groups: p.keys(of: spec.by, in: table),
                                                                numbers: table.dense[layout.dense.firstIndex(of: spec.of)!], comm))
        }
        // Out-of-fold target encodings of the training rows, fitted encoders kept for later rows.
        // Folds come from a seeded shuffle of one machine's row positions, so a row's fold does
        // not depend on which rank holds it.
        let folds = te.enabled ? outOfFoldFolds(partition, folds: te.folds, seed: seed) : [Int32](repeating: 0, count: table.rowCount)
        // The encoders are declared first (they name the features), then fitted one at a time while
        // the matrix is filled, so only one encoder's out-of-fold columns exist at once.
        var labels: [FunnelTarget: [Float]] = [:]
        for target in te.enabled ? te.targets : [] {
            labels[target] = target.values(of: table)
            for name in teSources {
                p.targetEncoders.append(TargetEncoderEntry(source: name, target: target, encoder: try BetaTargetEncoder(
                    priorStrength: te.priorStrength, minCount: te.minCount, statistics: te.statistics, formulas: te.formulas)))
            }
        }
        p.featureNames = p.namesInOrder()
        var fitted = p.targetEncoders
        var failure: Error?
        let m = p.matrix(table) { e, out in
            let keys = p.keys(of: fitted[e].source, in: table)
            do {
                var counts = CategoryLabelCounts(keys: keys, labels: labels[fitted[e].target]!, fold: folds, folds: te.folds)
                counts = try counts.merged(comm)
                fitted[e].encoder.fit(counts: counts)
                fitted[e].encoder.encodeOutOfFold(keys: keys, fold: folds, counts: counts, into: &out)
            } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        p.targetEncoders = fitted
        return (p, m)
    }

    /// The categorical and numeric columns kept (`features.drop` applied), after checking that
    /// every column the configuration names is one of them and the fold count.
    private static func keptColumns(_ config: TabularFeatureConfig, layout: TableLayout, file: String) throws
        -> (categorical: [String], numeric: [String]) {
        let known = Set(layout.categorical + layout.dense + layout.ignored)
        for name in config.drop where !known.contains(name) {
            throw DataError(file: file, column: name, "named in features.drop but not a column of the table")
        }
        let dropped = Set(config.drop)
        let categorical = layout.categorical.filter { !dropped.contains($0) }
        let numeric = layout.dense.filter { !dropped.contains($0) }
        for pair in config.crosses {
            guard pair.count == 2 else {
                throw FunnelError("features.crosses: each cross names two categorical columns, got \(pair)")
            }
            for name in pair where !categorical.contains(name) {
                throw DataError(file: file, column: name, "named in features.crosses but not a kept categorical column")
            }
        }
        for spec in config.groupStatistics {
            guard categorical.contains(spec.by) else {
                throw DataError(file: file, column: spec.by, "group_statistics.by must be a kept categorical column")
            }
            guard numeric.contains(spec.of) else {
                throw DataError(file: file, column: spec.of, "group_statistics.of must be a kept numeric column")
            }
        }
        let te = config.targetEncoding
        if te.enabled {
            guard te.folds >= 2 else { throw FunnelError("target_encoding.folds must be at least 2 (out-of-fold encoding)") }
        }
        return (categorical, numeric)
    }

    /// This rank's rows' folds: a seeded shuffle of one machine's row positions, position i of
    /// the shuffle in fold i mod `folds` — a row's fold does not depend on which rank holds it.
    private static func outOfFoldFolds(_ partition: RowPartition, folds: Int, seed: UInt64) -> [Int32] {
        var out = [Int32](repeating: 0, count: partition.count)
        var order = (0..<Int32(partition.total)).map { $0 }
        var rng = RandomSource(seed: seed, stream: 0x7E)
        rng.shuffle(&order)
        let mine = partition.positions
        for (i, r) in order.enumerated() where mine.contains(Int(r)) { out[Int(r) - mine.lowerBound] = Int32(i % folds) }
        return out
    }

    /// The feature matrix of any later table (validation, test, serving).
    public func transform(_ table: RawTable) throws -> FeatureMatrix {
        guard table.layout.categorical == layout.categorical, table.layout.dense == layout.dense else {
            throw DataError(file: table.report.file, "columns differ from the training file's")
        }
        if hasDay && table.days.isEmpty && table.rowCount > 0 && config.dayOfWeek {
            throw DataError(file: table.report.file, "the model uses day of week but the rows have no day column")
        }
        return matrix(table, outOfFold: nil)
    }

    private func namesInOrder() -> [String] {
        var names = numeric
        if config.labelEncode { names += categorical }
        if config.dayOfWeek && hasDay { names.append("day_of_week") }
        names += crossNames
        for e in targetEncoders {
            names += e.encoder.statistics.map { "te_\(e.target.rawValue)_\($0.rawValue)(\(e.source))" }
        }
        for g in groupTables {
            names += g.spec.statistics.map { "\($0.rawValue)(\(g.spec.of)|\(g.spec.by))" }
        }
        return names
    }

    /// Category keys of a column or a cross (`a*b`) for every row.
    func keys(of source: String, in table: RawTable) -> [Int64] {
        if let k = layout.categorical.firstIndex(of: source) { return table.keys[k] }
        let parts = source.components(separatedBy: Self.crossSeparator)
        let a = table.keys[layout.categorical.firstIndex(of: parts[0])!]
        let b = table.keys[layout.categorical.firstIndex(of: parts[1])!]
        return zip(a, b).map { Self.crossKey($0, $1) }
    }

    /// A stable key for a pair of categories (FNV-1a over both keys' bytes).
    static func crossKey(_ a: Int64, _ b: Int64) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in [UInt64(bitPattern: a), UInt64(bitPattern: b)] {
            for s in stride(from: 0, to: 64, by: 8) { h = (h ^ ((v >> UInt64(s)) & 0xFF)) &* 0x0000_0100_0000_01B3 }
        }
        return Int64(bitPattern: h)
    }

    /// Fills the feature matrix. `outOfFold` (training rows only) writes target encoding `e`'s
    /// columns itself; otherwise the fitted encoders encode.
    private func matrix(_ table: RawTable, outOfFold: ((Int, inout [[Float]]) -> Void)?) -> FeatureMatrix {
        let n = table.rowCount, d = featureNames.count
        let missing = config.missingValue ?? .nan
        var values = [Float](repeating: 0, count: n * d)
        var j = 0
        values.withUnsafeMutableBufferPointer { m in
            func put(_ column: (Int) -> Float) {
                for r in 0..<n { m[r * d + j] = column(r) }
                j += 1
            }
            for name in numeric {
                let col = table.dense[layout.dense.firstIndex(of: name)!]
                put { col[$0].isNaN ? missing : col[$0] }
            }
            if config.labelEncode {
                for name in categorical {
                    let enc = labelEncoders[name]!, keys = self.keys(of: name, in: table)
                    put { enc.code(keys[$0]).map(Float.init) ?? missing }
                }
            }
            if config.dayOfWeek && hasDay { put { Float(table.days[$0] % 7) } }
            for name in crossNames {
                let enc = labelEncoders[name]!, keys = self.keys(of: name, in: table)
                put { enc.code(keys[$0]).map(Float.init) ?? missing }
            }
            for (e, entry) in targetEncoders.enumerated() {
                var out = entry.encoder.statistics.map { _ in [Float](repeating: 0, count: n) }
                if let outOfFold { outOfFold(e, &out) } else {
                    entry.encoder.encode(keys: keys(of: entry.source, in: table), into: &out)
                }
                for s in 0..<out.count { let col = out[s]; put { col[$0] } }
            }
            for g in groupTables {
                let keys = self.keys(of: g.spec.by, in: table)
                let idx = keys.map { g.index(of: $0) }
                for s in 0..<g.spec.statistics.count {
                    let col = g.values[s]
                    put { idx[$0].map { col[$0] } ?? missing }
                }
            }
        }
        return FeatureMatrix(rows: n, names: featureNames, values: values)
    }
}
