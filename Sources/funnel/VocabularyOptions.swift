import ArgumentParser
import Foundation
import Funnel

/// `train`'s admission and eviction flags (`VocabularyPolicy`); continuing a model, each flag
/// given replaces that rule of the saved policy, the others stay.
struct VocabularyOptions: ParsableArguments {
    @Option(help: "An id gets an embedding row only after this many occurrences, counted across continued runs (the counts of ids not yet admitted are kept in the model directory); N for every field, FIELD=N per field, comma-separated.")
    var admitMinCount: String?
    @Option(help: "Drop the rows of ids not seen for this many days (by --day-column, else by runs: each continued run is a day); they fall back to the out-of-vocabulary row. N or FIELD=N, comma-separated.")
    var evictUnseenDays: String?
    @Option(help: "Keep at most this many values per field, the most frequent (least-frequently-used eviction). N or FIELD=N, comma-separated.")
    var maxRowsPerField: String?
    @Option(parsing: .unconditional, help: "Pending ids (not yet admitted) kept per field, the most frequent (default 1000000).")
    var pendingCapacity: Int?
    @Option(help: "An integer day column: ids' last-seen days come from it (never a feature).") var dayColumn: String?

    /// The policy these flags set over `previous` (a continued model's), nil when neither sets one.
    func policy(previous: VocabularyPolicy?) throws -> VocabularyPolicy? {
        guard previous != nil || admitMinCount != nil || evictUnseenDays != nil || maxRowsPerField != nil
                || pendingCapacity != nil || dayColumn != nil else { return nil }
        var p = previous ?? VocabularyPolicy()
        if let admitMinCount { p.admitMinCount = try VocabularyPolicy.Setting.parse(admitMinCount, flag: "--admit-min-count").over(p.admitMinCount) }
        if let evictUnseenDays { p.evictUnseenDays = try VocabularyPolicy.Setting.parse(evictUnseenDays, flag: "--evict-unseen-days").over(p.evictUnseenDays) }
        if let maxRowsPerField { p.maxRowsPerField = try VocabularyPolicy.Setting.parse(maxRowsPerField, flag: "--max-rows-per-field").over(p.maxRowsPerField) }
        if let pendingCapacity { p.pendingCapacity = pendingCapacity }
        if let dayColumn {
            if let before = previous?.dayColumn, before != dayColumn {
                throw FunnelError("--day-column \(dayColumn): the model to continue counts days by '\(before)'")
            }
            p.dayColumn = dayColumn
        }
        try p.validate()
        return p
    }
}
