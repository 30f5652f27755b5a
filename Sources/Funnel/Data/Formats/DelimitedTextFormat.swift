/// CSV/TSV with a header (`TableReader`): roles from the options and the first rows, labels
/// `0`/`1` (or `0.0`/`1.0`), a row with more or fewer cells than the header a bad row. Columns a
/// trained model does not read are left out; a missing one it reads is an error naming it.
public struct DelimitedTextFormat: TableFormat {
    public init() {}
    public var name: String { "csv" }
    /// The fallback: any text file is read as delimited text (its header decides the rest).
    public func recognises(_ path: String) -> Bool { true }

    public func inferLayout(_ path: String, options: ReadOptions, sampleRows: Int?) throws -> TableLayout {
        try TableReader.inferLayout(try CSVFile(path: path, delimiter: options.delimiter), options: options, sampleRows: sampleRows)
    }

    public func hasLabels(_ path: String, layout: TableLayout, options: ReadOptions) throws -> Bool {
        let header = try CSVFile(path: path, delimiter: options.delimiter).header
        return header.contains(layout.clickColumn) && header.contains(layout.conversionColumn)
    }

    public func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool, chunkRows: Int,
                           releasePages: Bool, sink: (RawTable) throws -> Void) throws -> ReadReport {
        let csv = try CSVFile(path: path, delimiter: options.delimiter)
        // The rows held at once — one chunk's, or the whole file's — must fit.
        try TableMemory.check(rows: min(chunkRows, csv.estimatedDataRows()), layout: layout, file: path,
                              streamedHint: chunkRows == .max
                                  ? "Prepare a cache (funnel prepare) and train with --memory-budget, or ignore columns (--ignore)."
                                  : "Lower --group-rows, or ignore columns (--ignore).")
        return try TableReader.readChunks(csv, layout: layout, options: options, requireLabels: requireLabels, chunkRows: chunkRows,
                                          releasePages: releasePages, sink: sink)
    }
}
