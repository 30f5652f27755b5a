/// A column that groups a file's rows (a user, a request) for the group AUCs
/// (`eval --group-column`, `experiment --group-column`): read as a categorical column — its text
/// or integer is the key, an empty cell a group of its own — and kept by source row, so any
/// subset of the file's rows (downsampled, a day, the clicked rows) finds its groups.
public struct GroupColumn: Sendable {
    public let file: String
    public let column: String
    /// Source row → group key.
    let keys: [Int32: Int64]

    /// Reads `column` of `path` with the model's label columns (rows the reading drops — the
    /// inconsistent-row policy, skipped bad rows — are dropped alike). A column the file does not
    /// have is an error naming it.
    public init(_ path: String, column: String, options: ReadOptions, layout: TableLayout) throws {
        let groupLayout = TableLayout(clickColumn: layout.clickColumn, conversionColumn: layout.conversionColumn, categorical: [column],
                                      dense: [], ignored: [], multiValued: [])
        let table: RawTable
        do {
            table = try TableSource.read(path, layout: groupLayout, options: options, requireLabels: false)
        } catch let e as DataError where e.column == column {
            throw DataError(file: path, column: column, "the group column is not in the file (--group-column)")
        }
        var keys: [Int32: Int64] = [:]
        for (i, row) in table.sourceRows.enumerated() { keys[row] = table.keys[0][i] }
        self.file = path
        self.column = column
        self.keys = keys
    }

    /// The group of each row of `data`, in its order.
    public func keys(for data: EncodedDataset) throws -> [Int64] {
        try data.sourceRows.map { row in
            guard let k = keys[row] else {
                throw DataError(file: file, column: column, "data row \(row) has no group (it was left out while reading the group column)")
            }
            return k
        }
    }
}
