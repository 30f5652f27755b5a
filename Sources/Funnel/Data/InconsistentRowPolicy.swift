/// What to do with rows that say conversion = 1 but click = 0 (impossible in a post-click
/// funnel). Every reader — CSV/TSV, cache, streamed cache — applies it through `admit`.
public enum InconsistentPolicy: String, CaseIterable, Codable, Sendable {
    case drop, keep, error
    /// Kept and not counted as inconsistent: where a conversion without a click is data
    /// (RecSys 2023 installs without a click, which the two-step model's `is_like` counts).
    case data

    /// The policies a user chooses between (`data` is set by layouts that need it).
    public static let userChoices: [InconsistentPolicy] = [.drop, .keep, .error]

    /// Decides one inconsistent row: whether to keep it, counted in `report`; throws under
    /// `.error`, naming the file, line and conversion column.
    @inline(__always)
    public func admit(file: String, line: Int, column: String, report: inout ReadReport) throws -> Bool {
        switch self {
        case .drop: report.inconsistentDropped += 1; return false
        case .keep: report.inconsistentKept += 1; return true
        case .data: return true
        case .error:
            throw DataError(file: file, line: line, column: column, "conversion=1 with click=0 (use --inconsistent drop|keep)")
        }
    }

    /// Applies the policy to a table read without it (a cache keeps every row): the rows with
    /// conversion = 1 and click = 0 are admitted one by one, as a CSV read would.
    public func apply(to table: RawTable) throws -> RawTable {
        guard table.hasLabels else { return table }
        var t = table
        t.report.inconsistentDropped = 0
        t.report.inconsistentKept = 0
        var keep = [Bool](repeating: true, count: t.rowCount)
        var dropped = false
        for i in 0..<t.rowCount where t.conversion[i] == 1 && t.click[i] == 0 {
            keep[i] = try admit(file: t.report.file, line: Int(t.sourceRows[i]) + 2, column: t.layout.conversionColumn, report: &t.report)
            dropped = dropped || !keep[i]
        }
        guard dropped else { return t }
        let out = t.rows(where: keep)
        guard out.rowCount > 0 else { throw DataError(file: t.report.file, "no usable rows (all dropped)") }
        return out
    }
}
