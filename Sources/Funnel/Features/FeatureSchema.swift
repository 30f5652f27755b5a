import Foundation

/// The vocabulary of one categorical field. Id 0 is the field's out-of-vocabulary id (rare,
/// unseen and missing values); kept values get ids 1…n in ascending key order, so the ids do
/// not depend on row order.
public struct FieldVocabulary: Codable, Sendable {
    public let name: String
    /// Value text by id − 1 (empty for a hashed field).
    public let values: [String]
    /// A hashed field's buckets (`HashBuckets`): ids are 1 + hash(key) mod buckets, 0 for an
    /// empty cell; nil for a vocabulary.
    public let hashBuckets: Int?
    /// The field whose embedding rows this one uses (`SharedVocabularies`; same values); nil: its own.
    public let sharesRowsWith: String?
    private var lookup: [Int64: Int32] = [:]

    enum CodingKeys: String, CodingKey {
        case name, values
        case hashBuckets = "hash_buckets"
        case sharesRowsWith = "shares_rows_with"
    }

    public init(name: String, values: [String], hashBuckets: Int? = nil, sharesRowsWith: String? = nil) {
        self.name = name
        self.values = values
        self.hashBuckets = hashBuckets
        self.sharesRowsWith = sharesRowsWith
        buildLookup()
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        values = try c.decode([String].self, forKey: .values)
        hashBuckets = try c.decodeIfPresent(Int.self, forKey: .hashBuckets)
        sharesRowsWith = try c.decodeIfPresent(String.self, forKey: .sharesRowsWith)
        if let n = hashBuckets, !(1...HashBuckets.limit).contains(n) {
            throw DecodingError.dataCorruptedError(forKey: .hashBuckets, in: c, debugDescription: "hash buckets out of range: \(n)")
        }
        buildLookup()
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(values, forKey: .values)
        try c.encodeIfPresent(hashBuckets, forKey: .hashBuckets)
        try c.encodeIfPresent(sharesRowsWith, forKey: .sharesRowsWith)
    }

    private mutating func buildLookup() {
        lookup.reserveCapacity(values.count)
        for (i, v) in values.enumerated() { lookup[CategoryKey.of(v)] = Int32(i + 1) }
    }

    /// Rows in the embedding table: the values (or buckets) plus the OOV / empty row.
    public var size: Int { (hashBuckets ?? values.count) + 1 }

    @inline(__always)
    public func id(of key: Int64) -> Int32 {
        if let n = hashBuckets { return key == CategoryKey.empty ? 0 : HashBuckets.bucket(key, n) }
        return lookup[key] ?? 0
    }
}

/// Training mean and standard deviation of one dense column, and what they summarise: the
/// count of non-empty values and their variance before the standard deviation's floor (so a
/// continued model can combine them with the next data's exactly; `ContinuedSchema`). Models
/// saved before counts were recorded have neither.
public struct DenseStatistics: Codable, Sendable {
    public let name: String
    public let mean: Double
    public let std: Double
    public var count: Double? = nil
    public var variance: Double? = nil

    public init(name: String, mean: Double, std: Double) {
        self.name = name
        self.mean = mean
        self.std = std
    }

    /// From a count, mean and (population) variance; a variance too small to divide by
    /// standardises with 1 (the column is constant: every value becomes 0).
    public init(name: String, count: Double, mean: Double, variance: Double) {
        let std = count > 1 ? max(variance, 0).squareRoot() : 0
        self.init(name: name, mean: mean, std: std > 1e-12 ? std : 1)
        self.count = count
        self.variance = variance
    }
}

/// Everything needed to turn a raw row into model input exactly as in training: the column
/// layout, per-field vocabularies and the dense normalisation. Saved in `model.json`.
public struct FeatureSchema: Codable, Sendable {
    public let layout: TableLayout
    public let minCount: Int
    public let fields: [FieldVocabulary]
    public let dense: [DenseStatistics]

    /// First global embedding row of each field, and the table's rows: the fields share one
    /// table, one block each — except a field sharing an earlier field's rows
    /// (`FieldVocabulary.sharesRowsWith`), which points at that block and adds none. (A field
    /// naming one that does not come before it keeps its own block.)
    private var layoutOfRows: (offsets: [Int], rows: Int) {
        var out: [Int] = [], acc = 0, placed: [String: Int] = [:]
        for f in fields {
            if let owner = f.sharesRowsWith, let at = placed[owner], fields.first(where: { $0.name == owner })?.size == f.size {
                out.append(at)
            } else {
                out.append(acc)
                acc += f.size
            }
            placed[f.name] = out.last!
        }
        return (out, acc)
    }

    public var fieldOffsets: [Int] { layoutOfRows.offsets }

    public var embeddingRows: Int { layoutOfRows.rows }

    /// Embedding rows per field (a field sharing another's rows counts them too).
    public var tableRows: [String: Int] { Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0.size) }) }

    /// Fits vocabularies (values seen at least `minCount` times; hashed fields take no
    /// vocabulary) and dense mean/std on `raw`.
    public static func fit(_ raw: RawTable, minCount: Int, hashing: HashBuckets = HashBuckets()) -> FeatureSchema {
        fitWithNotes(raw, minCount: minCount, hashing: hashing).schema
    }

    /// `fit`, with a note per hashed field: its distinct training values, the buckets they
    /// fill and how many collided.
    public static func fitWithNotes(_ raw: RawTable, minCount: Int, hashing: HashBuckets,
                                    sharing: SharedVocabularies = SharedVocabularies()) -> (schema: FeatureSchema, notes: [String]) {
        var acc = Accumulator(layout: raw.layout)
        acc.add(raw)
        return (acc.schema(minCount: minCount, hashing: hashing, sharing: sharing), acc.hashNotes(hashing))
    }

    /// Counts and running moments for fitting a schema over chunks of a table (a streamed cache);
    /// chunks added in row order give exactly the schema of the whole table.
    public struct Accumulator {
        public let layout: TableLayout
        var counts: [[Int64: Int]]
        var moments: [(n: Double, mean: Double, m2: Double)]
        var textTokens: [Int64: String] = [:]
        public internal(set) var rows = 0
        public internal(set) var clicks = 0
        public internal(set) var conversions = 0

        public init(layout: TableLayout) {
            self.layout = layout
            counts = Array(repeating: [:], count: layout.categorical.count)
            moments = Array(repeating: (0, 0, 0), count: layout.dense.count)
        }

        public mutating func add(_ raw: RawTable) {
            let bagOf = layout.categorical.map { layout.multiValued.firstIndex(of: $0) }
            for k in 0..<layout.categorical.count {
                // A multi-valued field counts every value of every row (its key slot is a placeholder).
                for key in bagOf[k].map({ raw.bags[$0].keys }) ?? raw.keys[k] { counts[k][key, default: 0] += 1 }
            }
            for k in 0..<layout.dense.count {
                var (n, mean, m2) = moments[k]
                for v in raw.dense[k] where !v.isNaN {
                    n += 1
                    let d = Double(v) - mean
                    mean += d / n
                    m2 += d * (Double(v) - mean)
                }
                moments[k] = (n, mean, m2)
            }
            textTokens.merge(raw.textTokens) { a, _ in a }
            rows += raw.rowCount
            clicks += Int(raw.click.reduce(0, +))
            for i in 0..<min(raw.click.count, raw.conversion.count) where raw.click[i] == 1 && raw.conversion[i] == 1 { conversions += 1 }
        }

        /// Per hashed field: distinct (non-empty) training values, buckets used, collisions.
        public func hashNotes(_ hashing: HashBuckets) -> [String] {
            layout.categorical.enumerated().compactMap { k, name in
                guard let n = hashing.buckets(for: name) else { return nil }
                let keys = counts[k].keys.filter { $0 != CategoryKey.empty }
                let used = Set(keys.map { HashBuckets.bucket($0, n) }).count
                return "field \(name): \(keys.count) distinct values hashed into \(n) buckets (\(used) used), "
                    + "\(keys.count - used) collision(s)"
            }
        }

        public func schema(minCount: Int, hashing: HashBuckets = HashBuckets(), sharing: SharedVocabularies = SharedVocabularies()) -> FeatureSchema {
            var fields: [FieldVocabulary] = []
            let owners = sharing.owners(in: layout.categorical)
            for (k, name) in layout.categorical.enumerated() {
                if let n = hashing.buckets(for: name) {
                    fields.append(FieldVocabulary(name: name, values: [], hashBuckets: n))
                    continue
                }
                // A shared group counts every member's values together, and each member keeps the same values.
                let owner = owners[name] ?? name
                let members = layout.categorical.indices.filter { (owners[layout.categorical[$0]] ?? layout.categorical[$0]) == owner }
                var total = counts[k]
                if members.count > 1 { total = [:]; for m in members { total.merge(counts[m], uniquingKeysWith: +) } }
                let kept = total.filter { $0.value >= max(minCount, 1) }.keys.sorted()
                fields.append(FieldVocabulary(name: name, values: kept.map { textTokens[$0] ?? String($0) }, sharesRowsWith: owners[name]))
            }
            var dense: [DenseStatistics] = []
            for (k, name) in layout.dense.enumerated() {
                let (n, mean, m2) = moments[k]
                dense.append(DenseStatistics(name: name, count: n, mean: mean, variance: n > 0 ? m2 / n : 0))
            }
            return FeatureSchema(layout: layout, minCount: minCount, fields: fields, dense: dense)
        }
    }

    /// A raw dense value as the model sees it: standardised with the training mean and std;
    /// NaN (an empty cell) becomes 0, the training mean. Every input path goes through here.
    @inline(__always)
    public func standardized(_ v: Float, dense k: Int) -> Float {
        v.isNaN ? 0 : Float((Double(v) - dense[k].mean) * (1 / dense[k].std))
    }

    /// Encodes a raw table: ids offset into the shared table, dense standardised, empty → 0
    /// (the training mean).
    public func encode(_ raw: RawTable) -> EncodedDataset {
        let n = raw.rowCount, f = fields.count, d = dense.count
        var ids = [Int32](repeating: 0, count: n * f)
        let offsets = fieldOffsets
        ids.withUnsafeMutableBufferPointer { out in
            for k in 0..<f {
                let vocab = fields[k], off = Int32(offsets[k])
                raw.keys[k].withUnsafeBufferPointer { keys in
                    for r in 0..<n { out[r * f + k] = off + vocab.id(of: keys[r]) }
                }
            }
        }
        var values = [Float](repeating: 0, count: n * d)
        values.withUnsafeMutableBufferPointer { out in
            for k in 0..<d {
                raw.dense[k].withUnsafeBufferPointer { col in
                    for r in 0..<n { out[r * d + k] = standardized(col[r], dense: k) }
                }
            }
        }
        let bags = layout.multiValued.enumerated().map { b, name -> EncodedBag in
            let k = layout.categorical.firstIndex(of: name)!
            let vocab = fields[k], off = Int32(offsets[k])
            let bag = raw.bags[b]
            return EncodedBag(field: k, offsets: bag.offsets, ids: bag.keys.map { off + vocab.id(of: $0) }, weights: bag.weights)
        }
        return EncodedDataset(rowCount: n, fields: f, denseCount: d, ids: ids, dense: values,
                              click: raw.hasLabels ? raw.click : nil,
                              conversion: raw.hasLabels ? raw.conversion : nil,
                              sourceRows: raw.sourceRows, bags: bags)
    }
}
