/// `--request-column COL --request-fields F1,F2,…` while a CSV is read: each kept row's request
/// key (COL's cell, as a categorical value) goes into the table's `RequestKeys`, and the request
/// fields are checked constant within a request — a row whose request field differs from the
/// request's first row is a `RowProblem` naming its line, the field and that first line (an
/// error, or a counted skip under `--skip-bad-rows`). An empty request cell is one too.
struct RequestColumnCheck {
    let fields: [String]
    private let positions: [Int]
    private let bagOf: [Int?]
    private let column: String
    private let file: String
    /// Per request key: the first row's line and its request fields' values (a bag by a hash of
    /// its ids and weights).
    private var seen: [Int64: (line: Int, values: [Int64])] = [:]

    /// Nil without a request column; refuses request fields that are not categorical columns.
    init?(_ options: ReadOptions, layout: TableLayout, file: String) throws {
        guard let column = options.requestColumn else { return nil }
        guard !options.requestFields.isEmpty else {
            throw DataError(file: file, column: column, "a request column needs the fields constant within a request (--request-fields)")
        }
        for f in options.requestFields where !layout.categorical.contains(f) {
            throw DataError(file: file, line: 1, column: f, "a request field must be a categorical column of the table")
        }
        (fields, self.column, self.file) = (options.requestFields, column, file)
        positions = fields.map { layout.categorical.firstIndex(of: $0)! }
        bagOf = positions.map { layout.multiValued.firstIndex(of: layout.categorical[$0]) }
    }

    /// Checks the decoded row against its request's first row and appends its key.
    mutating func admit(line: Int, _ bytes: UnsafePointer<UInt8>, _ cell: CSVFile.Cell, _ row: TableReader.CSVRowDecoder,
                        into requests: inout RequestKeys) throws {
        guard cell.count > 0 else {
            throw RowProblem(.badValue, DataError(file: file, line: line, column: column, "the request id is empty"))
        }
        let key = CellDecoding.categorical(bytes + cell.start, cell.count)
        let values = positions.indices.map { i in bagOf[i].map { Self.fingerprint(row.bagKeys[$0], row.bagWeights[$0]) } ?? row.keys[positions[i]] }
        if let first = seen[key] {
            if let i = values.indices.first(where: { values[$0] != first.values[$0] }) {
                throw RowProblem(.badValue, DataError(file: file, line: line, column: fields[i],
                    "differs from line \(first.line) of the same request ('\(CSVFile.text(bytes, cell))'): a request field must be constant within a request"))
            }
        } else {
            seen[key] = (line, values)
        }
        requests.keys.append(key)
    }

    private static func fingerprint(_ keys: [Int64], _ weights: [Float]) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (k, w) in zip(keys, weights) {
            h = (h ^ UInt64(bitPattern: k)) &* 0x0000_0100_0000_01B3
            h = (h ^ UInt64(w.bitPattern)) &* 0x0000_0100_0000_01B3
        }
        return Int64(bitPattern: h ^ UInt64(keys.count))
    }
}
