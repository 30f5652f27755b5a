/// Continuing a model on new data (`train --init-from PREV --train NEW`): the schema of the next
/// model is PREV's, grown by what NEW brings.
///
/// - **Vocabularies grow by appending.** Every id PREV knew keeps its id (so its embedding row
///   and its optimizer moments carry over unchanged); values of NEW that PREV did not know (seen
///   at least `minCount` times in NEW) get the next ids, in ascending key order among themselves.
///   A grown vocabulary is therefore sorted only within each run's additions — no reader relies
///   on the order, lookups go through the key → id table.
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
    public static func readOptions(_ user: ReadOptions, continuing prev: FeatureSchema, from dir: String) throws -> ReadOptions {
        var o = user
        let l = prev.layout
        o.clickColumn = o.clickColumn ?? l.clickColumn
        o.conversionColumn = o.conversionColumn ?? l.conversionColumn
        o.categorical += l.categorical
        o.dense += l.dense
        o.ignore += l.ignored
        o.multiValued += l.multiValued
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
        return o
    }

    /// The shared-vocabulary groups recorded in a schema (`FieldVocabulary.sharesRowsWith`).
    static func sharedVocabularies(of schema: FeatureSchema) -> SharedVocabularies {
        var groups: [String: [String]] = [:]
        for f in schema.fields { if let owner = f.sharesRowsWith { groups[owner, default: [owner]].append(f.name) } }
        return SharedVocabularies(groups: groups.keys.sorted().map { groups[$0]! })
    }

    /// PREV's schema grown by `fitted` (NEW's own schema, fitted with PREV's roles, hashing and
    /// minimum count). `previousRows` weighs PREV's dense statistics when it recorded no counts.
    public static func grow(_ prev: FeatureSchema, with fitted: FeatureSchema, previousRows: Int, file: String) throws -> FeatureSchema {
        guard prev.layout == fitted.layout else {
            throw FunnelError("\(file): its columns differ from the model it continues (\(describeDifference(prev.layout, fitted.layout)))")
        }
        var fields: [FieldVocabulary] = []
        for (old, new) in zip(prev.fields, fitted.fields) {
            guard old.hashBuckets == nil else { fields.append(old); continue }
            let known = Set(old.values)
            let added = new.values.filter { !known.contains($0) }
            fields.append(FieldVocabulary(name: old.name, values: old.values + added, sharesRowsWith: old.sharesRowsWith))
        }
        let dense = zip(prev.dense, fitted.dense).map { combine($0, $1, previousRows: previousRows) }
        return FeatureSchema(layout: prev.layout, minCount: prev.minCount, fields: fields, dense: dense)
    }

    /// Chan et al.'s exact pairwise combination of two (count, mean, variance) summaries.
    static func combine(_ a: DenseStatistics, _ b: DenseStatistics, previousRows: Int) -> DenseStatistics {
        let na = a.count ?? Double(previousRows), nb = b.count ?? 0
        let va = a.variance ?? a.std * a.std, vb = b.variance ?? b.std * b.std
        let n = na + nb
        guard n > 0 else { return a }
        let delta = b.mean - a.mean
        let mean = a.mean + delta * nb / n
        let m2 = va * na + vb * nb + delta * delta * na * nb / n
        return DenseStatistics(name: a.name, count: n, mean: mean, variance: m2 / n)
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

    /// The next model's schema: PREV's grown by `fitted`, the schema fitted on `file`.
    public func grown(by fitted: FeatureSchema, file: String) throws -> FeatureSchema {
        try ContinuedSchema.grow(schema, with: fitted, previousRows: rows, file: file)
    }
}

/// Where each of a previous schema's embedding rows lives in a grown one: a field's block may
/// move (an earlier field grew) but keeps its order, and its new rows follow its old ones.
public struct EmbeddingRowMap: Sendable {
    /// (old first row, new first row, rows) per block of the old table.
    public let blocks: [(from: Int, to: Int, rows: Int)]
    public let oldRows: Int
    public let newRows: Int

    public init(from old: FeatureSchema, to new: FeatureSchema) {
        let oldOffsets = old.fieldOffsets, newOffsets = new.fieldOffsets
        var blocks: [(Int, Int, Int)] = [], seen = Set<Int>()
        for k in old.fields.indices where seen.insert(oldOffsets[k]).inserted {
            blocks.append((oldOffsets[k], newOffsets[k], old.fields[k].size))
        }
        self.blocks = blocks
        oldRows = old.embeddingRows
        newRows = new.embeddingRows
    }

    /// True when nothing moves (the same schema, or growth only in the last block).
    public var isIdentity: Bool { blocks.allSatisfy { $0.from == $0.to } && oldRows == newRows }

    /// Copies the old table's rows (`width` floats each) into their places in the new table.
    public func copy(_ old: UnsafePointer<Float>, into new: UnsafeMutablePointer<Float>, width: Int) {
        for b in blocks { (new + b.to * width).update(from: old + b.from * width, count: b.rows * width) }
    }
}
