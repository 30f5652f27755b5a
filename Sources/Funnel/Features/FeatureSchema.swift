import Foundation

/// The vocabulary of one categorical field. Id 0 is the field's out-of-vocabulary id (rare,
/// unseen and missing values); kept values get ids 1…n in ascending key order (a continued
/// model appends each run's new values after the old ones, `ContinuedSchema`), so the ids do
/// not depend on row order.
///
/// Held in memory (fitted, or read from an older `model.json` that lists the values), or mapped
/// from a model directory's `vocabularies.bin` (`VocabularyFile`): then `model.json` records
/// only the count and nothing proportional to the id space is parsed or copied at load.
public struct FieldVocabulary: Codable, Sendable {
    public private(set) var name: String
    /// A hashed field's buckets (`HashBuckets`): ids are 1 + hash(key) mod buckets, 0 for an
    /// empty cell; nil for a vocabulary.
    public let hashBuckets: Int?
    /// The field whose embedding rows this one uses (`SharedVocabularies`; same values); nil: its own.
    public private(set) var sharesRowsWith: String?
    /// In memory: value text by id − 1, and key → id.
    private var texts: [String] = []
    private var lookup: [Int64: Int32] = [:]
    /// In memory: per value, its occurrences counted across runs (saturating) and the day (or
    /// run) it was last seen — what admission and eviction decide on (`VocabularyGrowth`);
    /// empty when not recorded (models saved before continuous training).
    private var occurrenceCounts: [UInt32] = []
    private var lastSeenDays: [Int32] = []
    /// Ids not admitted yet (`VocabularyPolicy.admitMinCount`): their occurrences so far.
    private var pendingIDs: [(key: Int64, count: UInt32)] = []
    /// Mapped from `vocabularies.bin`, or from the shard files of a sharded model (`ShardedVocabularyIndex`).
    private var mapped: MappedVocabulary?
    private var mappedShards: MappedVocabularyShards?
    /// The count a `model.json` without values declares, until the mapped file is attached.
    private var declaredCount: Int?

    /// An encoder whose `userInfo` holds this key (true) writes counts instead of values: the
    /// values go to `vocabularies.bin`.
    public static let valuesElsewhere = CodingUserInfoKey(rawValue: "funnel.vocabulary.values-elsewhere")!

    enum CodingKeys: String, CodingKey {
        case name, values, count
        case hashBuckets = "hash_buckets"
        case sharesRowsWith = "shares_rows_with"
    }

    public init(name: String, values: [String], hashBuckets: Int? = nil, sharesRowsWith: String? = nil) {
        self.name = name
        self.texts = values
        self.hashBuckets = hashBuckets
        self.sharesRowsWith = sharesRowsWith
        buildLookup()
    }

    /// A vocabulary with its values' usage (parallel to `values`) and its pending ids.
    public init(name: String, values: [String], occurrences: [UInt32], lastSeen: [Int32], pending: [(key: Int64, count: UInt32)],
                sharesRowsWith: String? = nil) {
        precondition(occurrences.count == values.count && lastSeen.count == values.count)
        self.init(name: name, values: values, sharesRowsWith: sharesRowsWith)
        (occurrenceCounts, lastSeenDays, pendingIDs) = (occurrences, lastSeen, pending)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        hashBuckets = try c.decodeIfPresent(Int.self, forKey: .hashBuckets)
        sharesRowsWith = try c.decodeIfPresent(String.self, forKey: .sharesRowsWith)
        if let n = hashBuckets, !(1...HashBuckets.limit).contains(n) {
            throw DecodingError.dataCorruptedError(forKey: .hashBuckets, in: c, debugDescription: "hash buckets out of range: \(n)")
        }
        if let values = try c.decodeIfPresent([String].self, forKey: .values) {
            texts = values
            buildLookup()
        } else {
            let n = try c.decode(Int.self, forKey: .count)
            guard (0..<Int(Int32.max)).contains(n) else {
                throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: "value count out of range: \(n)")
            }
            declaredCount = n
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        if encoder.userInfo[Self.valuesElsewhere] as? Bool == true && hashBuckets == nil {
            try c.encode(count, forKey: .count)
        } else {
            try c.encode(values, forKey: .values)
        }
        try c.encodeIfPresent(hashBuckets, forKey: .hashBuckets)
        try c.encodeIfPresent(sharesRowsWith, forKey: .sharesRowsWith)
    }

    /// A field of `count` values of which this process knows only the ids of `known` keys: a
    /// vocabulary split over the ranks of a job (`VocabularyShard`) — empty, it declares the
    /// count alone (what the training schema of such a job holds); filled, it encodes rows whose
    /// keys were resolved at their owners.
    init(name: String, count: Int, known: [Int64: Int32], sharesRowsWith: String?) {
        (self.name, self.hashBuckets, self.sharesRowsWith) = (name, nil, sharesRowsWith)
        (declaredCount, lookup) = (count, known)
    }

    private mutating func buildLookup() {
        lookup.reserveCapacity(texts.count)
        for (i, v) in texts.enumerated() { lookup[CategoryKey.of(v)] = Int32(i + 1) }
    }

    /// Values in the vocabulary (ids 1…count).
    public var count: Int { mapped?.count ?? mappedShards?.count ?? declaredCount ?? texts.count }

    /// Every value's text by id − 1 (a mapped vocabulary's are built on the call).
    public var values: [String] {
        mapped.map { m in (0..<m.count).map(m.value(at:)) } ?? mappedShards.map { m in (0..<m.count).map(m.value(at:)) } ?? texts
    }

    /// The text of value `i` (id i + 1).
    public func value(at i: Int) -> String { mapped?.value(at: i) ?? mappedShards?.value(at: i) ?? texts[i] }

    /// The category key of value `i` (id i + 1).
    public func key(at i: Int) -> Int64 { mapped?.key(at: i) ?? mappedShards?.key(at: i) ?? CategoryKey.of(texts[i]) }

    /// The same values under another field's name, using `owner`'s embedding rows.
    func sharingRows(of owner: String, as name: String) -> FieldVocabulary {
        var f = self
        (f.name, f.sharesRowsWith) = (name, owner)
        return f
    }

    /// Value `i`'s occurrences across runs and last-seen day, when recorded.
    public func usage(at i: Int) -> (occurrences: UInt32, lastSeen: Int32)? {
        if let m = mapped { return m.usage.map { ($0.occurrences[i], $0.lastSeen[i]) } }
        if let m = mappedShards { return m.usage(at: i) }
        return occurrenceCounts.isEmpty ? nil : (occurrenceCounts[i], lastSeenDays[i])
    }

    /// Whether the values' usage is recorded.
    public var hasUsage: Bool { mapped.map { $0.usage != nil } ?? mappedShards?.hasUsage ?? !occurrenceCounts.isEmpty }

    /// Ids waiting for admission, with their occurrences so far.
    public var pending: [(key: Int64, count: UInt32)] {
        if let m = mappedShards { return m.pending }
        guard let m = mapped else { return pendingIDs }
        return m.pending.map { p in (0..<p.count).map { (p.keys[$0], p.counts[$0]) } } ?? []
    }

    /// Whether every value's text is its integer key written in decimal (no text to store).
    var isCanonicalIntegers: Bool {
        mapped.map { $0.text == nil } ?? mappedShards?.isCanonicalIntegers ?? texts.allSatisfy { Int64($0).map(String.init) == $0 }
    }

    /// A vocabulary `model.json` declared by count only, still to be attached from its file.
    var awaitsValues: Bool { declaredCount != nil && mapped == nil && mappedShards == nil && hashBuckets == nil }

    /// Takes the values of a mapped `vocabularies.bin`, which must hold the declared count.
    mutating func attach(_ m: MappedVocabulary, path: String) throws {
        guard m.count == declaredCount else {
            throw DataError(file: path, "field '\(name)' holds \(m.count) values; model.json declares \(declaredCount ?? texts.count)")
        }
        mapped = m
    }

    /// Takes the values of a sharded model's vocabulary files (their count checked by the reader).
    mutating func attach(_ m: MappedVocabularyShards) {
        mappedShards = m
    }

    /// Rows in the embedding table: the values (or buckets) plus the OOV / empty row.
    public var size: Int { (hashBuckets ?? count) + 1 }

    @inline(__always)
    public func id(of key: Int64) -> Int32 {
        if let n = hashBuckets { return key == CategoryKey.empty ? 0 : HashBuckets.bucket(key, n) }
        if let m = mapped { return m.id(of: key) }
        if let m = mappedShards { return m.id(of: key) }
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
    public internal(set) var fields: [FieldVocabulary]
    public internal(set) var dense: [DenseStatistics]
    /// Admission and eviction across runs (nil: none; every value seen `minCount` times is kept).
    public var vocabularyPolicy: VocabularyPolicy? = nil
    /// The day (by the policy's day column) or run number of the latest run: the "now" that
    /// last-seen days are measured against. Nil in models saved before continuous training.
    public var clock: Int? = nil

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

    /// The schema of counted rows: fitted (under `options`' hashing, sharing and vocabulary
    /// policy), or `previous` grown by them; with notes on what admission and eviction did.
    static func fitted(_ acc: Accumulator, minCount: Int, options: ReadOptions, growing previous: PreviousSchema?,
                       file: String) throws -> (FeatureSchema, [String]) {
        try (options.vocabularyPolicy ?? previous?.schema.vocabularyPolicy)?.check(acc.layout, file: file)
        if let previous { return try previous.grown(by: acc, minCount: minCount, options: options, file: file) }
        let (schema, reports) = acc.schema(minCount: minCount, hashing: options.hashBuckets, sharing: options.sharedVocabularies,
                                           previous: nil, policy: options.vocabularyPolicy)
        return (schema, options.vocabularyPolicy?.isActive == true ? VocabularyGrowth.notes(reports, fields: schema.fields) : [])
    }

    /// Counts and running moments for fitting a schema over chunks of a table (a streamed cache);
    /// chunks added in row order give exactly the schema of the whole table.
    public struct Accumulator {
        public let layout: TableLayout
        var counts: [[Int64: Int]]
        /// Per field, each key's latest day — when the rows carry days (a day column).
        var lastDays: [[Int64: Int32]]?
        var maxDay: Int32 = .min
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
            if let p = raw.requests?.perRequest { addPerRequest(p) }
            if !raw.days.isEmpty { addDays(raw, bagOf: bagOf) }
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

        /// Request-level lists count once per row pointing at their request, as if every row held a copy.
        private mutating func addPerRequest(_ p: PerRequestBags) {
            let rows = p.rowsPerRequest
            for (name, bag) in zip(p.fields, p.bags) {
                let k = layout.categorical.firstIndex(of: name)!
                for q in 0..<rows.count where rows[q] > 0 {
                    for i in Int(bag.offsets[q])..<Int(bag.offsets[q + 1]) { counts[k][bag.keys[i], default: 0] += rows[q] }
                }
            }
        }

        /// Each key's latest day, from rows that carry days.
        private mutating func addDays(_ raw: RawTable, bagOf: [Int?]) {
            if lastDays == nil { lastDays = Array(repeating: [:], count: layout.categorical.count) }
            for k in 0..<layout.categorical.count {
                if let b = bagOf[k] {
                    let bag = raw.bags[b]
                    for r in 0..<raw.rowCount {
                        for i in Int(bag.offsets[r])..<Int(bag.offsets[r + 1]) { see(bag.keys[i], day: Int32(clamping: raw.days[r]), field: k) }
                    }
                } else {
                    for (r, key) in raw.keys[k].enumerated() { see(key, day: Int32(clamping: raw.days[r]), field: k) }
                }
            }
            maxDay = max(maxDay, Int32(clamping: raw.days.max() ?? Int(Int32.min)))
        }

        /// Key `key` of field `k` seen on `day`: its latest day is the later one.
        mutating func see(_ key: Int64, day: Int32, field k: Int) {
            if lastDays == nil { lastDays = Array(repeating: [:], count: layout.categorical.count) }
            if lastDays![k][key].map({ $0 < day }) ?? true { lastDays![k][key] = day }
        }

        /// Chan et al.'s exact pairwise combination of two (count, mean, M2) summaries of a
        /// dense column (nil when both are empty).
        static func combined(_ a: (n: Double, mean: Double, m2: Double), _ b: (n: Double, mean: Double, m2: Double))
            -> (n: Double, mean: Double, m2: Double)? {
            let n = a.n + b.n
            guard n > 0 else { return nil }
            let delta = b.mean - a.mean
            return (n, a.mean + delta * b.n / n, a.m2 + b.m2 + delta * delta * a.n * b.n / n)
        }

        /// Per hashed field: distinct (non-empty) training values, buckets used, collisions.
        public func hashNotes(_ hashing: HashBuckets) -> [String] {
            Self.hashNotes(hashStatistics(hashing), hashing)
        }

        /// Per hashed field (in field order): its distinct non-empty values and the buckets they use.
        func hashStatistics(_ hashing: HashBuckets) -> [(name: String, distinct: Int, used: Int)] {
            layout.categorical.enumerated().compactMap { k, name in
                guard let n = hashing.buckets(for: name) else { return nil }
                let keys = counts[k].keys.filter { $0 != CategoryKey.empty }
                return (name, keys.count, Set(keys.map { HashBuckets.bucket($0, n) }).count)
            }
        }

        static func hashNotes(_ statistics: [(name: String, distinct: Int, used: Int)], _ hashing: HashBuckets) -> [String] {
            statistics.map { f in
                "field \(f.name): \(f.distinct) distinct values hashed into \(hashing.buckets(for: f.name)!) buckets (\(f.used) used), "
                    + "\(f.distinct - f.used) collision(s)"
            }
        }

        public func schema(minCount: Int, hashing: HashBuckets = HashBuckets(), sharing: SharedVocabularies = SharedVocabularies(),
                           policy: VocabularyPolicy? = nil) -> FeatureSchema {
            schema(minCount: minCount, hashing: hashing, sharing: sharing, previous: nil, policy: policy).schema
        }

        /// The schema after these rows — grown from `previous` when continuing a model (its
        /// values, usage and pending ids carried over), admitted, evicted and capped by `policy`
        /// (`VocabularyGrowth`) — and per field what that did.
        func schema(minCount: Int, hashing: HashBuckets, sharing: SharedVocabularies, previous: FeatureSchema?,
                    policy: VocabularyPolicy?) -> (schema: FeatureSchema, reports: [String: VocabularyGrowth.Report]) {
            let clock = Self.clock(after: previous, maxDay: lastDays == nil ? nil : maxDay, policy: policy)
            var fields: [FieldVocabulary] = [], reports: [String: VocabularyGrowth.Report] = [:]
            let owners = sharing.owners(in: layout.categorical)
            for (k, name) in layout.categorical.enumerated() {
                if let n = hashing.buckets(for: name) {
                    fields.append(FieldVocabulary(name: name, values: [], hashBuckets: n))
                    continue
                }
                // A shared group counts every member's values together, and each member keeps the same values.
                let owner = owners[name] ?? name
                if let o = fields.first(where: { $0.name == owner }) {
                    fields.append(o.sharingRows(of: owner, as: name))
                    continue
                }
                let members = layout.categorical.indices.filter { (owners[layout.categorical[$0]] ?? layout.categorical[$0]) == owner }
                var total = counts[k], days = lastDays?[k]
                if members.count > 1 {
                    total = [:]
                    for m in members { total.merge(counts[m], uniquingKeysWith: +) }
                    if let all = lastDays { days = [:]; for m in members { days!.merge(all[m], uniquingKeysWith: max) } }
                }
                let growth = VocabularyGrowth(previous: previous?.fields[k], counts: total, lastDays: days, clock: Int32(clock),
                                              minCount: minCount, policy: policy, text: { textTokens[$0] ?? String($0) })
                let (field, report) = growth.grown(name: name, sharesRowsWith: owners[name])
                fields.append(field)
                reports[name] = report
            }
            var dense: [DenseStatistics] = []
            for (k, name) in layout.dense.enumerated() {
                let (n, mean, m2) = moments[k]
                dense.append(DenseStatistics(name: name, count: n, mean: mean, variance: n > 0 ? m2 / n : 0))
            }
            var schema = FeatureSchema(layout: layout, minCount: minCount, fields: fields, dense: dense)
            // The clock is what the values' last-seen days are measured against: always recorded.
            (schema.vocabularyPolicy, schema.clock) = (policy?.isActive == true ? policy : nil, clock)
            return (schema, reports)
        }

        /// "Now" for last-seen days: the latest day of the data (never before the previous
        /// run's) with a day column; otherwise the run number.
        static func clock(after previous: FeatureSchema?, maxDay: Int32?, policy: VocabularyPolicy?) -> Int {
            if let maxDay { return max(Int(maxDay), previous?.clock ?? Int(Int32.min)) }
            return (previous?.clock ?? 0) + 1
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
        let bags = layout.multiValued.enumerated().map { b, name in encodeBag(raw.bags[b], column: name) }
        return EncodedDataset(rowCount: n, fields: f, denseCount: d, ids: ids, dense: values,
                              click: raw.hasLabels ? raw.click : nil,
                              conversion: raw.hasLabels ? raw.conversion : nil,
                              sourceRows: raw.sourceRows, bags: bags,
                              requests: raw.requests.map { r in
                                  EncodedRequests(keys: r.keys, fields: r.fields.compactMap { layout.categorical.firstIndex(of: $0) },
                                                  perRequest: r.perRequest.map { p in
                                                      EncodedPerRequest(rowRequest: p.rowRequest, bags: zip(p.fields, p.bags).map { encodeBag($1, column: $0) })
                                                  })
                              })
    }

    /// A multi-valued column's raw values as global embedding ids.
    private func encodeBag(_ bag: RawBag, column name: String) -> EncodedBag {
        let k = layout.categorical.firstIndex(of: name)!
        let vocab = fields[k], off = Int32(fieldOffsets[k])
        return EncodedBag(field: k, offsets: bag.offsets, ids: bag.keys.map { off + vocab.id(of: $0) }, weights: bag.weights)
    }
}
