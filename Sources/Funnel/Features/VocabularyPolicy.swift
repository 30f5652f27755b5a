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
    public var admitMinCount: Int?
    public var evictUnseenDays: Int?
    public var maxRowsPerField: Int?
    public var pendingCapacity: Int
    /// The integer day column ids' last-seen days come from (nil: each run is a day).
    public var dayColumn: String?

    public static let defaultPendingCapacity = 1_000_000

    public init(admitMinCount: Int? = nil, evictUnseenDays: Int? = nil, maxRowsPerField: Int? = nil,
                pendingCapacity: Int = VocabularyPolicy.defaultPendingCapacity, dayColumn: String? = nil) {
        self.admitMinCount = admitMinCount
        self.evictUnseenDays = evictUnseenDays
        self.maxRowsPerField = maxRowsPerField
        self.pendingCapacity = pendingCapacity
        self.dayColumn = dayColumn
    }

    /// Whether any rule is set (otherwise the schema records none).
    public var isActive: Bool { admitMinCount != nil || evictUnseenDays != nil || maxRowsPerField != nil || dayColumn != nil }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw FunnelError(message) } }
        try check((admitMinCount ?? 1) >= 1, "--admit-min-count must be ≥ 1")
        try check((evictUnseenDays ?? 1) >= 1, "--evict-unseen-days must be ≥ 1")
        try check((maxRowsPerField ?? 1) >= 1 && (maxRowsPerField ?? 1) < Int(Int32.max), "--max-rows-per-field must be ≥ 1")
        try check((1...100_000_000).contains(pendingCapacity), "--pending-capacity must be between 1 and 100000000")
    }
}
