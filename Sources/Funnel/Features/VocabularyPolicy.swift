/// Which ids get and keep embedding rows across the runs of continuous training (DeepRec's
/// EmbeddingVariable filters, Monolith's frequency filter and expiry), saved in the schema so
/// every continued run applies it again (`train --init-from` keeps it unless flags change it).
///
/// - `admitMinCount` N: an id gets a row once it has occurred N times *counted across runs*;
///   until then its count waits in the field's pending table.
/// - `evictUnseenDays` D: a row whose id was last seen D or more days ago (by `dayColumn`, or by
///   runs when there is none: a run is a day) is dropped; the id falls back to the
///   out-of-vocabulary row and, seen again, starts over.
/// - `maxRowsPerField` M: a field keeps at most M values, the most frequent (least frequently
///   used evicted first; ties: the longer unseen, then the smaller key).
/// - `pendingCapacity` K: the pending table keeps the K highest counts per field. The bound is
///   what makes its memory fixed, and its error: an id whose pending count falls outside the
///   top K is forgotten (its count restarts at 0 — an undercount, never an overcount), so an id
///   is admitted late only if it occurred fewer times than the K-th pending id. Each run reports
///   the largest count it forgot (`VocabularyGrowth.Report`).
public struct VocabularyPolicy: Codable, Sendable, Equatable {
    /// A rule's value for every field (`all`) and per field (`FIELD=N`, which wins).
    public struct Setting: Codable, Sendable, Equatable {
        public var all: Int?
        public var perField: [String: Int] = [:]

        public init(all: Int? = nil, perField: [String: Int] = [:]) {
            self.all = all
            self.perField = perField
        }

        public func value(for field: String) -> Int? { perField[field] ?? all }

        /// `N`, `FIELD=N` entries, or both, comma-separated (as `--hash-buckets`).
        public static func parse(_ text: String, flag: String) throws -> Setting {
            var out = Setting()
            for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard let n = Int(pieces.last ?? ""), n >= 1, !(pieces.count == 2 && pieces[0].isEmpty) else {
                    throw FunnelError("\(flag) takes N or FIELD=N (N ≥ 1), comma-separated; got '\(part)'")
                }
                if pieces.count == 2 { out.perField[pieces[0]] = n } else { out.all = n }
            }
            return out
        }

        /// This setting over `base` (a continued model's): values given replace, others stay.
        public func over(_ base: Setting?) -> Setting {
            Setting(all: all ?? base?.all, perField: (base?.perField ?? [:]).merging(perField) { _, new in new })
        }
    }

    public var admitMinCount: Setting?
    public var evictUnseenDays: Setting?
    public var maxRowsPerField: Setting?
    public var pendingCapacity: Int
    /// The integer day column ids' last-seen days come from (nil: each run is a day).
    public var dayColumn: String?

    public static let defaultPendingCapacity = 1_000_000

    /// Rules for every field.
    public init(admitMinCount: Int? = nil, evictUnseenDays: Int? = nil, maxRowsPerField: Int? = nil,
                pendingCapacity: Int = VocabularyPolicy.defaultPendingCapacity, dayColumn: String? = nil) {
        self.admitMinCount = admitMinCount.map { Setting(all: $0) }
        self.evictUnseenDays = evictUnseenDays.map { Setting(all: $0) }
        self.maxRowsPerField = maxRowsPerField.map { Setting(all: $0) }
        self.pendingCapacity = pendingCapacity
        self.dayColumn = dayColumn
    }

    /// Whether any rule is set (otherwise the schema records none).
    public var isActive: Bool { admitMinCount != nil || evictUnseenDays != nil || maxRowsPerField != nil || dayColumn != nil }

    /// One field's rules.
    func rules(for field: String) -> (admit: Int?, evictDays: Int?, maxRows: Int?) {
        (admitMinCount?.value(for: field), evictUnseenDays?.value(for: field), maxRowsPerField?.value(for: field))
    }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw FunnelError(message) } }
        for (flag, s) in [("--admit-min-count", admitMinCount), ("--evict-unseen-days", evictUnseenDays), ("--max-rows-per-field", maxRowsPerField)] {
            guard let s else { continue }
            try check(([s.all].compactMap { $0 } + s.perField.values).allSatisfy { $0 >= 1 && $0 < Int(Int32.max) }, "\(flag) values must be ≥ 1")
        }
        try check((1...100_000_000).contains(pendingCapacity), "--pending-capacity must be between 1 and 100000000")
    }

    /// Per-field rules must name categorical fields of the table.
    public func check(_ layout: TableLayout, file: String) throws {
        for s in [admitMinCount, evictUnseenDays, maxRowsPerField] {
            for name in (s?.perField.keys.sorted() ?? []) where !layout.categorical.contains(name) {
                throw DataError(file: file, column: name, "a vocabulary rule names a column that is not a categorical field")
            }
        }
    }
}
