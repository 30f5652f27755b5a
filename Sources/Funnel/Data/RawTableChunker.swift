/// A reader's output in tables of at most `chunkRows` kept rows, for callers that write or train
/// chunk by chunk in bounded memory. The reader appends rows (and counts its lines and skips) in
/// `table`, calls `rowKept` after each kept row and `finish` at the end; the read report runs on
/// from one table to the next, so the last table's (and `finish`'s) is the whole file's.
struct RawTableChunker {
    var table: RawTable
    private let chunkRows: Int
    private(set) var kept = 0
    private var delivered = 0

    init(layout: TableLayout, hasLabels: Bool, file: String, chunkRows: Int) {
        table = RawTable(layout: layout, hasLabels: hasLabels, file: file)
        self.chunkRows = chunkRows
    }

    /// Counts the row just appended; a full table goes to `sink` and a fresh one, carrying the
    /// report, takes its place.
    mutating func rowKept(sink: (RawTable) throws -> Void) throws {
        kept += 1
        guard table.rowCount >= chunkRows else { return }
        table.report.rowsKept = kept
        try sink(table)
        delivered += 1
        let report = table.report
        let requests = table.requests.map { RequestKeys(keys: [], fields: $0.fields) }
        table = RawTable(layout: table.layout, hasLabels: table.hasLabels, file: report.file)
        table.report = report
        table.requests = requests
    }

    /// Hands over the last rows — an empty table too when nothing was delivered, so a caller always
    /// gets at least one — and returns the whole file's report.
    mutating func finish(sink: (RawTable) throws -> Void) throws -> ReadReport {
        table.report.rowsKept = kept
        if table.rowCount > 0 || delivered == 0 { try sink(table) }
        return table.report
    }
}
