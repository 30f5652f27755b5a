/// How to read a table: label columns, column-role overrides and error policy.
public struct ReadOptions: Sendable {
    /// Default conversion-label candidates, first present wins.
    public static let conversionCandidates = ["purchase", "conversion", "buy", "is_installed"]

    public var delimiter: UInt8? = nil
    public var clickColumn: String? = nil
    public var conversionColumn: String? = nil
    /// Column-name patterns (`*` matches any run of characters) forcing a role.
    public var categorical: [String] = []
    public var dense: [String] = []
    public var ignore: [String] = []
    public var inconsistent: InconsistentPolicy = .drop
    /// Skip malformed rows (counted per kind and reported) instead of stopping at the first.
    public var skipBadRows = false
    /// An integer time column (e.g. `day`) read into `RawTable.days` for splitting, never a feature.
    public var dayColumn: String? = nil
    /// Categorical fields mapped by a stable hash instead of a vocabulary when a schema is fitted.
    public var hashBuckets = HashBuckets()
    /// Categorical fields sharing one vocabulary and block of embedding rows when a schema is fitted.
    public var sharedVocabularies = SharedVocabularies()
    /// Admission and eviction when a schema is fitted or grown (nil: none, or a continued model's).
    public var vocabularyPolicy: VocabularyPolicy? = nil
    /// Column-name patterns of multi-valued (categorical) columns: a cell holds values separated
    /// by `valueSeparator`, each `id` or `id:weight`; `maxValues` keeps a row's highest-weight ones.
    public var multiValued: [String] = []
    public var valueSeparator = UInt8(ascii: "|")
    public var maxValues: Int? = nil
    /// The column naming each row's request (`--request-column`; not a feature) and the
    /// categorical columns constant within a request (`--request-fields`): `RequestKeys`.
    public var requestColumn: String? = nil
    public var requestFields: [String] = []
    /// Read a raw Ali-CCP cache's request-only lists once per request (`ColumnarCache.table`),
    /// for a training run that shares requests; other formats ignore it.
    public var requestLevel = false
    /// One rank's rows of a data-parallel job: the data rows whose 0-based index `i` has
    /// `i % count == index` (nil: every row). Column roles are still inferred from the file's
    /// first rows, so every rank reads the same layout.
    public var shard: Shard? = nil

    /// Rows are dealt round-robin (`i % count == index`), or, when `contiguousOf` gives the
    /// file's data-row count, as one contiguous run per rank (rank r: rows r·n/N ..< (r+1)·n/N),
    /// which keeps every rank's rows a contiguous stretch of one machine's table (the GBDT path
    /// needs that to bag rows exactly as one machine does).
    public struct Shard: Sendable, Equatable {
        public var index: Int
        public var count: Int
        public var contiguousOf: Int?
        public init(index: Int, count: Int, contiguousOf: Int? = nil) {
            self.index = index
            self.count = count
            self.contiguousOf = contiguousOf
        }
        /// The data rows of rank `index` when contiguous.
        public var range: Range<Int>? {
            contiguousOf.map { n in (index * n / count)..<((index + 1) * n / count) }
        }
        @inline(__always) public func owns(_ row: Int) -> Bool {
            if let n = contiguousOf { return row >= index * n / count && row < (index + 1) * n / count }
            return row % count == index
        }
    }

    public init() {}

    public static func matches(_ name: String, _ patterns: [String]) -> Bool {
        patterns.contains { glob($0, name) }
    }

    /// Minimal glob: `*` matches any (possibly empty) run of characters; everything else is literal.
    static func glob(_ pattern: String, _ s: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(s.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && p[pi] == UInt8(ascii: "*") { star = pi; pi += 1; mark = ti }
            else if pi < p.count && p[pi] == t[ti] { pi += 1; ti += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// Which columns of a table are labels, categorical fields and dense features.
/// Inferred from the training file, then stored with the model and applied to every later file.
public struct TableLayout: Codable, Equatable, Sendable {
    public var clickColumn: String
    public var conversionColumn: String
    public var categorical: [String]
    public var dense: [String]
    public var ignored: [String]
    /// The categorical columns that are multi-valued (in categorical order), their cells'
    /// value separator, and the most values a row keeps (nil: all).
    public var multiValued: [String] = []
    public var valueSeparator: String = "|"
    public var maxValues: Int? = nil

    public init(clickColumn: String, conversionColumn: String, categorical: [String], dense: [String], ignored: [String],
                multiValued: [String] = [], valueSeparator: String = "|", maxValues: Int? = nil) {
        self.clickColumn = clickColumn
        self.conversionColumn = conversionColumn
        self.categorical = categorical
        self.dense = dense
        self.ignored = ignored
        self.multiValued = multiValued
        self.valueSeparator = valueSeparator
        self.maxValues = maxValues
    }

    enum CodingKeys: String, CodingKey {
        case clickColumn, conversionColumn, categorical, dense, ignored, multiValued, valueSeparator, maxValues
    }

    /// Older files have no multi-valued keys; single-valued layouts are written without them,
    /// byte for byte as before.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clickColumn = try c.decode(String.self, forKey: .clickColumn)
        conversionColumn = try c.decode(String.self, forKey: .conversionColumn)
        categorical = try c.decode([String].self, forKey: .categorical)
        dense = try c.decode([String].self, forKey: .dense)
        ignored = try c.decode([String].self, forKey: .ignored)
        multiValued = try c.decodeIfPresent([String].self, forKey: .multiValued) ?? []
        valueSeparator = try c.decodeIfPresent(String.self, forKey: .valueSeparator) ?? "|"
        maxValues = try c.decodeIfPresent(Int.self, forKey: .maxValues)
        guard Set(multiValued).isSubset(of: categorical), valueSeparator.utf8.count == 1 else {
            throw DecodingError.dataCorruptedError(forKey: .multiValued, in: c, debugDescription: "multi-valued columns must be categorical, with a one-byte separator")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(clickColumn, forKey: .clickColumn)
        try c.encode(conversionColumn, forKey: .conversionColumn)
        try c.encode(categorical, forKey: .categorical)
        try c.encode(dense, forKey: .dense)
        try c.encode(ignored, forKey: .ignored)
        if !multiValued.isEmpty {
            try c.encode(multiValued, forKey: .multiValued)
            try c.encode(valueSeparator, forKey: .valueSeparator)
            try c.encodeIfPresent(maxValues, forKey: .maxValues)
        }
    }

    /// Indices (among the categorical fields) of the multi-valued ones.
    public var bagFields: [Int] { multiValued.compactMap { categorical.firstIndex(of: $0) } }
}

/// Counts of what reading a file kept, dropped and skipped.
public struct ReadReport: Codable, Equatable, Sendable {
    public var file: String
    public var dataLines = 0
    public var rowsKept = 0
    public var inconsistentDropped = 0
    public var inconsistentKept = 0

    /// Counts one skipped row of `kind`, keeping the first example's message.
    public mutating func countSkipped(_ kind: String, _ example: String) {
        skipped[kind, default: 0] += 1
        if firstSkipped[kind] == nil { firstSkipped[kind] = example }
    }
    /// Skipped malformed rows per kind (only with `skipBadRows`).
    public var skipped: [String: Int] = [:]
    /// Values of fields the layout does not have, per field (a PaddleRec file read against a
    /// trained model's layout: the model has no weights for them). Not stored in a cache footer.
    public var ignoredFieldValues: [String: Int] = [:]
    /// What fitting a schema on these rows reported (hashed fields' collisions). Not stored:
    /// cache footers written before it existed must still decode.
    public var schemaNotes: [String] = []

    enum CodingKeys: String, CodingKey {
        case file, dataLines, rowsKept, inconsistentDropped, inconsistentKept, skipped, firstSkipped
    }
    /// The first error message of each skipped kind, so a user can find the bad line.
    public var firstSkipped: [String: String] = [:]

    public init(file: String) { self.file = file }

    public var skippedTotal: Int { skipped.values.reduce(0, +) }

    /// A cache's report before any row group is read: the file's own counts (`footer`), none of
    /// the reading command's.
    public static func cache(_ footer: ReadReport) -> ReadReport {
        var r = footer
        (r.rowsKept, r.inconsistentDropped, r.inconsistentKept) = (0, 0, 0)
        return r
    }

    /// Adds what reading one row group of a cache counted: every group's report starts from the
    /// file's (`footer`), so only what goes beyond it is this group's.
    public mutating func addGroup(_ part: ReadReport, over footer: ReadReport) {
        rowsKept += part.rowsKept
        inconsistentDropped += part.inconsistentDropped
        inconsistentKept += part.inconsistentKept
        for (kind, n) in part.skipped where n > footer.skipped[kind] ?? 0 {
            skipped[kind, default: 0] += n - (footer.skipped[kind] ?? 0)
            if firstSkipped[kind] == nil { firstSkipped[kind] = part.firstSkipped[kind] }
        }
    }

    /// Human-readable notes for anything that was not a clean read; empty when clean.
    public var notes: [String] {
        var out: [String] = []
        if inconsistentDropped > 0 {
            out.append("\(file): dropped \(inconsistentDropped) row(s) with conversion=1 and click=0 (--inconsistent drop)")
        }
        if inconsistentKept > 0 {
            out.append("\(file): kept \(inconsistentKept) row(s) with conversion=1 and click=0 (--inconsistent keep)")
        }
        for kind in skipped.keys.sorted() {
            out.append("\(file): skipped \(skipped[kind]!) row(s): \(kind) (first: \(firstSkipped[kind] ?? "?"))")
        }
        if !ignoredFieldValues.isEmpty {
            let fields = ignoredFieldValues.keys.sorted().prefix(8).map { "\($0) (\(ignoredFieldValues[$0]!))" }.joined(separator: ", ")
            out.append("\(file): left out the values of \(ignoredFieldValues.count) field(s) the layout does not have: \(fields)"
                       + (ignoredFieldValues.count > 8 ? ", …" : ""))
        }
        return out + schemaNotes
    }
}
