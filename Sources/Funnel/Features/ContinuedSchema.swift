/// Continuing a model on new data (`train --init-from PREV --train NEW`): the schema of the next
/// model is PREV's, grown by what NEW brings.
///
/// - **Vocabularies grow by appending** (`VocabularyGrowth`). Every id PREV knew keeps its place
///   (so its embedding row and optimizer moments carry over), unless the vocabulary policy evicts
///   it; values of NEW that PREV did not know (seen `minCount` times, or admitted by the policy's
///   count across runs) get the next ids, in ascending key order among themselves. A grown
///   vocabulary is therefore sorted only within each run's additions — no reader relies on the
///   order, lookups go through the key → id table.
/// - **Hashed fields** keep their buckets: nothing grows, every id keeps its row.
/// - **Dense statistics** are the running mean and variance over every value either run saw:
///   PREV's (count, mean, variance) and NEW's are combined exactly (Chan et al.'s pairwise
///   update), so after many days the standardisation is the whole history's, and a day that
///   is small next to the history moves it little. A model saved before counts were recorded
///   counts its training rows.
/// - **Columns** are PREV's: NEW is read with PREV's column roles, hashing and shared
///   vocabularies, and a table whose columns then differ is refused.
public enum ContinuedSchema {
    /// How to read NEW so its columns mean what they meant to PREV: PREV's roles are added to the
    /// user's role patterns, PREV's hashing and shared vocabularies are used (the user's, when
    /// given, must be the same).
    /// A prepared cache (`reading`) has its roles fixed already: only the rest applies.
    public static func readOptions(_ user: ReadOptions, continuing prev: FeatureSchema, from dir: String,
                                   reading path: String? = nil) throws -> ReadOptions {
        var o = user
        let l = prev.layout
        if !(path.map(ColumnarCache.isCache) ?? false) {
            o.clickColumn = o.clickColumn ?? l.clickColumn
            o.conversionColumn = o.conversionColumn ?? l.conversionColumn
            o.categorical += l.categorical
            o.dense += l.dense
            o.ignore += l.ignored
            o.multiValued += l.multiValued
        }
        if let maxValues = l.maxValues { o.maxValues = o.maxValues ?? maxValues }
        let hashing = HashBuckets(perField: Dictionary(uniqueKeysWithValues: prev.fields.compactMap { f in f.hashBuckets.map { (f.name, $0) } }))
        if !user.hashBuckets.isEmpty, l.categorical.contains(where: { user.hashBuckets.buckets(for: $0) != hashing.buckets(for: $0) }) {
            throw FunnelError("--hash-buckets differs from the hashing of \(dir) (continuing keeps each field's buckets)")
        }
        o.hashBuckets = hashing
        let sharing = sharedVocabularies(of: prev)
        if !user.sharedVocabularies.groups.isEmpty, Set(user.sharedVocabularies.groups.map(Set.init)) != Set(sharing.groups.map(Set.init)) {
            throw FunnelError("--share-embedding differs from the shared vocabularies of \(dir) (continuing keeps them)")
        }
        o.sharedVocabularies = sharing
        o.vocabularyPolicy = user.vocabularyPolicy ?? prev.vocabularyPolicy
        o.dayColumn = o.vocabularyPolicy?.dayColumn ?? o.dayColumn
        return o
    }

    /// The shared-vocabulary groups recorded in a schema (`FieldVocabulary.sharesRowsWith`).
    static func sharedVocabularies(of schema: FeatureSchema) -> SharedVocabularies {
        var groups: [String: [String]] = [:]
        for f in schema.fields { if let owner = f.sharesRowsWith { groups[owner, default: [owner]].append(f.name) } }
        return SharedVocabularies(groups: groups.keys.sorted().map { groups[$0]! })
    }

    /// PREV's schema grown by the new data (`acc`, read with `readOptions`): vocabularies by
    /// `VocabularyGrowth` under PREV's policy (or `options`' when given), dense statistics
    /// combined. `previousRows` weighs PREV's dense statistics when it recorded no counts.
    static func grow(_ prev: FeatureSchema, by acc: FeatureSchema.Accumulator, minCount: Int, options: ReadOptions,
                     previousRows: Int, file: String) throws -> (schema: FeatureSchema, notes: [String]) {
        guard prev.layout == acc.layout else {
            throw FunnelError("\(file): its columns differ from the model it continues (\(describeDifference(prev.layout, acc.layout)))")
        }
        var (next, reports) = acc.schema(minCount: minCount, hashing: options.hashBuckets, sharing: options.sharedVocabularies,
                                         previous: prev, policy: options.vocabularyPolicy ?? prev.vocabularyPolicy)
        next.dense = zip(prev.dense, next.dense).map { combine($0, $1, previousRows: previousRows) }
        return (next, VocabularyGrowth.notes(reports, fields: next.fields))
    }

    /// Chan et al.'s exact pairwise combination of two (count, mean, variance) summaries.
    static func combine(_ a: DenseStatistics, _ b: DenseStatistics, previousRows: Int) -> DenseStatistics {
        let na = a.count ?? Double(previousRows), nb = b.count ?? 0
        let va = a.variance ?? a.std * a.std, vb = b.variance ?? b.std * b.std
        guard let both = FeatureSchema.Accumulator.combined((na, a.mean, va * na), (nb, b.mean, vb * nb)) else { return a }
        return DenseStatistics(name: a.name, count: both.n, mean: both.mean, variance: both.m2 / both.n)
    }

    private static func describeDifference(_ a: TableLayout, _ b: TableLayout) -> String {
        func diff(_ what: String, _ x: [String], _ y: [String]) -> String? {
            x == y ? nil : "\(what): model \(x.prefix(8).joined(separator: ",")) vs data \(y.prefix(8).joined(separator: ","))"
        }
        let parts = [diff("labels", [a.clickColumn, a.conversionColumn], [b.clickColumn, b.conversionColumn]),
                     diff("categorical", a.categorical, b.categorical), diff("dense", a.dense, b.dense),
                     diff("multi-valued", a.multiValued, b.multiValued)].compactMap { $0 }
        return parts.isEmpty ? "value separator or values per row" : parts.joined(separator: "; ")
    }
}

/// The schema of the model a run continues, to grow by the new data's (`ContinuedSchema.grow`).
public struct PreviousSchema: Sendable {
    public let schema: FeatureSchema
    /// The rows PREV was trained on (weighs dense statistics saved without counts).
    public let rows: Int
    /// PREV's model directory, for messages.
    public let directory: String

    public init(schema: FeatureSchema, rows: Int, directory: String) {
        self.schema = schema
        self.rows = rows
        self.directory = directory
    }

    /// The next model's schema: PREV's grown by the rows `acc` counted from `file`.
    func grown(by acc: FeatureSchema.Accumulator, minCount: Int, options: ReadOptions, file: String) throws -> (schema: FeatureSchema, notes: [String]) {
        try ContinuedSchema.grow(schema, by: acc, minCount: minCount, options: options, previousRows: rows, file: file)
    }
}

/// Where a previous schema's embedding rows live in the next one: a value the next schema
/// still has keeps its row's contents at its new id (blocks move when an earlier field grew,
/// ids shift down past evicted values), each field's out-of-vocabulary row stays its own, a
/// hashed field's block moves whole; evicted values' rows are left behind, and rows of new
/// values are not in the map.
public struct EmbeddingRowMap: Sendable {
    /// Contiguous runs: (old first row, new first row, rows).
    public let runs: [(from: Int, to: Int, rows: Int)]
    public let oldRows: Int
    public let newRows: Int

    public init(from old: FeatureSchema, to new: FeatureSchema) {
        let oldOffsets = old.fieldOffsets, newOffsets = new.fieldOffsets
        var runs: [(from: Int, to: Int, rows: Int)] = [], seen = Set<Int>()
        func map(_ from: Int, _ to: Int) {
            if let last = runs.last, last.from + last.rows == from, last.to + last.rows == to {
                runs[runs.count - 1].rows += 1
            } else {
                runs.append((from, to, 1))
            }
        }
        for k in old.fields.indices where seen.insert(oldOffsets[k]).inserted {
            let a = old.fields[k], b = new.fields[k], o = oldOffsets[k], n = newOffsets[k]
            if a.hashBuckets != nil {
                runs.append((o, n, a.size))
                continue
            }
            map(o, n)  // the out-of-vocabulary row
            for j in 0..<b.count {
                let id = Int(a.id(of: b.key(at: j)))
                if id > 0 { map(o + id, n + j + 1) }
            }
        }
        self.runs = runs
        oldRows = old.embeddingRows
        newRows = new.embeddingRows
    }

    /// Old rows carried into the new table.
    public var carriedRows: Int { runs.reduce(0) { $0 + $1.rows } }

    /// True when every row stays where it was and none is added or left behind.
    public var isIdentity: Bool { oldRows == newRows && carriedRows == oldRows && runs.allSatisfy { $0.from == $0.to } }

    /// Copies the old table's carried rows (`width` floats each) into their places in the new table.
    public func copy(_ old: UnsafePointer<Float>, into new: UnsafeMutablePointer<Float>, width: Int) {
        for r in runs { (new + r.to * width).update(from: old + r.from * width, count: r.rows * width) }
    }

    /// Copies a saved tensor (`saved` shape) into a parameter's buffer (`shape`): row by row
    /// when it is an embedding table this map moves, whole when the shapes agree; false when
    /// neither (the shapes do not fit).
    func carry(_ old: UnsafePointer<Float>, saved: [Int], into new: UnsafeMutablePointer<Float>, shape: [Int], sparse: Bool) -> Bool {
        let width = shape.dropFirst().reduce(1, *)
        if sparse && !isIdentity && shape.first == newRows && saved == [oldRows] + shape.dropFirst() {
            copy(old, into: new, width: width)
        } else if saved == shape {
            new.update(from: old, count: shape.reduce(1, *))
        } else {
            return false
        }
        return true
    }
}
