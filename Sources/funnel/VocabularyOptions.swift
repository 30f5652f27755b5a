import ArgumentParser
import Foundation
import Funnel

/// `train`'s admission and eviction flags (`VocabularyPolicy`); continuing a model, each flag
/// given replaces that rule of the saved policy, the others stay.
struct VocabularyOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "An id gets an embedding row only after this many occurrences, counted across continued runs (the counts of ids not yet admitted are kept in the model directory).")
    var admitMinCount: Int?
    @Option(parsing: .unconditional, help: "Drop the rows of ids not seen for this many days (by --day-column, else by runs: each continued run is a day); they fall back to the out-of-vocabulary row.")
    var evictUnseenDays: Int?
    @Option(parsing: .unconditional, help: "Keep at most this many values per field, the most frequent (least-frequently-used eviction).")
    var maxRowsPerField: Int?
    @Option(parsing: .unconditional, help: "Pending ids (not yet admitted) kept per field, the most frequent (default 1000000).")
    var pendingCapacity: Int?
    @Option(help: "An integer day column: ids' last-seen days come from it (never a feature).") var dayColumn: String?

    /// The policy these flags set over `previous` (a continued model's), nil when neither sets one.
    func policy(previous: VocabularyPolicy?) throws -> VocabularyPolicy? {
        guard previous != nil || admitMinCount != nil || evictUnseenDays != nil || maxRowsPerField != nil
                || pendingCapacity != nil || dayColumn != nil else { return nil }
        var p = previous ?? VocabularyPolicy()
        if let admitMinCount { p.admitMinCount = admitMinCount }
        if let evictUnseenDays { p.evictUnseenDays = evictUnseenDays }
        if let maxRowsPerField { p.maxRowsPerField = maxRowsPerField }
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
