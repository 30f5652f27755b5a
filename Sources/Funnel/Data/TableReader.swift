/// Reads delimited files into `RawTable`s: infers a `TableLayout` from a training file, and
/// reads any file against a known layout with located errors or counted skips.
public enum TableReader {
    /// Resolves the label columns and infers every other column's role from its values:
    /// integers → categorical, decimals → dense, text → categorical; overrides win. A minority of
    /// odd cells never flips a column: a column mostly of numbers stays numeric (its text cells
    /// are then errors at their line, or counted skips), and digit strings too long for Int64
    /// are still integer ids. Labels are never features, and a table with no feature left is
    /// an error.
    /// `sampleRows` limits inference to the first rows (a streaming `prepare` of a huge file);
    /// nil scans them all.
    public static func inferLayout(_ csv: CSVFile, options: ReadOptions, sampleRows: Int? = nil) throws -> TableLayout {
        let header = csv.header
        let (click, conversion) = try labelColumns(header, options: options, file: csv.path)
        var undecided: [Int] = []
        for (i, name) in header.enumerated() where name != click && name != conversion && name != options.dayColumn
            && name != options.requestColumn {
            if ReadOptions.matches(name, options.ignore) || ReadOptions.matches(name, options.categorical)
                || ReadOptions.matches(name, options.dense) || ReadOptions.matches(name, options.multiValued) { continue }
            undecided.append(i)
        }
        let kinds = try sampledKinds(csv, columns: undecided, sampleRows: sampleRows)
        var categorical: [String] = [], dense: [String] = [], ignored: [String] = [], multiValued: [String] = []
        for (i, name) in header.enumerated() where name != click && name != conversion {
            if ReadOptions.matches(name, options.ignore) || name == options.dayColumn || name == options.requestColumn { ignored.append(name) }
            else if ReadOptions.matches(name, options.multiValued) { categorical.append(name); multiValued.append(name) }
            else if ReadOptions.matches(name, options.categorical) { categorical.append(name) }
            else if ReadOptions.matches(name, options.dense) { dense.append(name) }
            else {
                switch kinds[i] {
                case .integer, .text: categorical.append(name)
                case .decimal, .empty: dense.append(name)
                }
            }
        }
        guard !categorical.isEmpty || !dense.isEmpty else {
            throw DataError(file: csv.path, line: 1, "no feature columns left: every column is a label, the day column or ignored")
        }
        return TableLayout(clickColumn: click, conversionColumn: conversion, categorical: categorical, dense: dense, ignored: ignored,
                           multiValued: multiValued, valueSeparator: String(UnicodeScalar(options.valueSeparator)),
                           maxValues: multiValued.isEmpty ? nil : options.maxValues)
    }

    /// The click and conversion columns (named by the options or found among the usual names),
    /// after checking that every column the options name is in the header.
    private static func labelColumns(_ header: [String], options: ReadOptions, file: String) throws -> (click: String, conversion: String) {
        let click = options.clickColumn ?? "click"
        guard header.contains(click) else {
            throw DataError(file: file, line: 1, column: click, "click label column is missing")
        }
        let conversion: String
        if let c = options.conversionColumn {
            guard header.contains(c) else {
                throw DataError(file: file, line: 1, column: c, "conversion label column is missing")
            }
            conversion = c
        } else if let c = ReadOptions.conversionCandidates.first(where: header.contains) {
            conversion = c
        } else {
            throw DataError(file: file, line: 1,
                            "no conversion label column (looked for \(ReadOptions.conversionCandidates.joined(separator: ", ")); use --conversion-column")
        }
        if let day = options.dayColumn, !header.contains(day) {
            throw DataError(file: file, line: 1, column: day, "day column is missing")
        }
        if let request = options.requestColumn, !header.contains(request) {
            throw DataError(file: file, line: 1, column: request, "request column is missing")
        }
        try checkLabelRoles(click: click, conversion: conversion, options: options, file: file)
        for name in options.categorical + options.dense + options.ignore + options.multiValued where !name.contains("*") {
            if !header.contains(name) {
                throw DataError(file: file, line: 1, column: name, "named in a column option but not in the header")
            }
        }
        return (click, conversion)
    }

    /// The majority token kind of each column in `columns` over the data rows (the first
    /// `sampleRows` of them when given); other columns' kinds are `.empty`.
    private static func sampledKinds(_ csv: CSVFile, columns: [Int], sampleRows: Int?) throws -> [TokenKind] {
        var counts = [[Int]](repeating: [0, 0, 0, 0], count: csv.header.count)  // by TokenKind
        var dataRows = 0
        try csv.forEachRow { _, bytes, cells in
            dataRows += 1
            guard cells.count == csv.header.count else { return true }  // reported by the read pass
            for i in columns { counts[i][NumberParsing.classifyForInference(bytes + cells[i].start, cells[i].count).rawValue] += 1 }
            return sampleRows.map { dataRows < $0 } ?? true
        }
        if dataRows == 0 { throw DataError(file: csv.path, "no data rows after the header") }
        return counts.map(TokenKind.majority)
    }

    /// Label columns are labels only: the two must differ, and no column option or the day
    /// column may name one (a `*` pattern simply never matches a label).
    static func checkLabelRoles(click: String, conversion: String, options: ReadOptions, file: String) throws {
        guard click != conversion else {
            throw DataError(file: file, line: 1, column: click, "the click and conversion labels name the same column")
        }
        for label in [click, conversion] {
            for (role, names) in [("ignored", options.ignore), ("categorical", options.categorical), ("dense", options.dense),
                                  ("multi-valued", options.multiValued)]
                where names.contains(label) {
                throw DataError(file: file, line: 1, column: label, "is a label column; it cannot also be \(role)")
            }
            if options.dayColumn == label {
                throw DataError(file: file, line: 1, column: label, "is a label column; it cannot also be the day column")
            }
        }
    }

    /// Reads `csv` against `layout`. Labels are required when `requireLabels`; otherwise they are
    /// read when both label columns are present.
    public static func read(_ csv: CSVFile, layout: TableLayout, options: ReadOptions,
                            requireLabels: Bool) throws -> RawTable {
        try TableMemory.check(rows: csv.estimatedDataRows(), layout: layout, file: csv.path,
                              streamedHint: "Prepare a cache (funnel prepare) and train with --memory-budget, or ignore columns (--ignore).")
        var table: RawTable?
        _ = try readChunks(csv, layout: layout, options: options, requireLabels: requireLabels, chunkRows: .max) { table = $0 }
        return table!
    }

    /// Streams `csv` against `layout` in tables of at most `chunkRows` kept rows, so a file of any
    /// size is read in bounded memory (`funnel prepare`). Each chunk's `report` holds the counts so
    /// far; the returned report is the whole file's. At least one chunk is delivered.
    @discardableResult
    public static func readChunks(_ csv: CSVFile, layout: TableLayout, options: ReadOptions, requireLabels: Bool,
                                  chunkRows: Int, releasePages: Bool = false, sink: (RawTable) throws -> Void) throws -> ReadReport {
        var decoder = try CSVRowDecoder(csv, layout: layout, options: options, requireLabels: requireLabels)
        let hasLabels = decoder.columns.click != nil
        var chunks = RawTableChunker(layout: layout, hasLabels: hasLabels, file: csv.path, chunkRows: chunkRows)
        var requests = try RequestColumnCheck(options, layout: layout, file: csv.path)
        chunks.table.requests = requests.map { RequestKeys(keys: [], fields: $0.fields) }
        // Each table goes out with the text of the categorical values read so far.
        func deliver(_ table: RawTable) throws {
            var table = table
            table.textTokens = decoder.textTokens
            try sink(table)
        }
        var dataRow = -1
        try csv.forEachRow(releasePages: releasePages) { line, bytes, cells in
            dataRow += 1
            chunks.table.report.dataLines += 1
            if let shard = options.shard, !shard.owns(dataRow) { return true }  // another rank's row: not even parsed
            do {
                guard try decoder.decode(line: line, bytes, cells, report: &chunks.table.report) else { return true }
                if let c = decoder.columns.request { try requests!.admit(line: line, bytes, cells[c], decoder, into: &chunks.table.requests!) }
                for b in 0..<decoder.bagKeys.count { chunks.table.appendBag(b, keys: decoder.bagKeys[b], weights: decoder.bagWeights[b]) }
                chunks.table.appendRow(keys: decoder.keys, dense: decoder.dense, labels: hasLabels ? decoder.labels : nil,
                                       day: decoder.columns.day != nil ? decoder.day : nil, sourceRow: Int32(dataRow))
                try chunks.rowKept(sink: deliver)
            } catch let problem as RowProblem {
                try BadRowPolicy.handle(problem, options: options, report: &chunks.table.report)
            }
            return true
        }
        if chunks.table.report.dataLines == 0 { throw DataError(file: csv.path, "no data rows after the header") }
        if chunks.kept == 0 {
            throw DataError(file: csv.path, "no usable rows (\(chunks.table.report.dataLines) read, all dropped or skipped)")
        }
        return try chunks.finish(sink: deliver)
    }

    /// Where each column the layout reads sits in the file's header.
    struct ColumnPositions {
        var categorical: [Int]
        var dense: [Int]
        /// Both label columns, or neither.
        var click: Int?
        var conversion: Int?
        var day: Int?
        /// `--request-column`.
        var request: Int?
        var count: Int

        init(header: [String], file: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool) throws {
            var index: [String: Int] = [:]
            for (i, n) in header.enumerated() { index[n] = i }
            func column(_ name: String) throws -> Int {
                guard let i = index[name] else {
                    throw DataError(file: file, line: 1, column: name, "column is missing (the model was trained with it)")
                }
                return i
            }
            categorical = try layout.categorical.map(column)
            dense = try layout.dense.map(column)
            click = index[layout.clickColumn]
            conversion = index[layout.conversionColumn]
            if requireLabels {
                click = try column(layout.clickColumn)
                conversion = try column(layout.conversionColumn)
            } else if click == nil || conversion == nil {
                click = nil; conversion = nil
            }
            day = try options.dayColumn.map(column)
            request = try options.requestColumn.map(column)
            count = header.count
        }
    }

    /// Decodes one CSV row's cells (through `CellDecoding`, as the server decodes request rows)
    /// into reusable buffers; a malformed cell is a `RowProblem` naming file, line and column.
    struct CSVRowDecoder {
        let columns: ColumnPositions
        let layout: TableLayout
        let options: ReadOptions
        let path: String
        private(set) var keys: [Int64]
        private(set) var dense: [Float]
        private(set) var labels: (click: Float, conversion: Float) = (0, 0)
        private(set) var day = 0
        /// Original text of non-integer categorical values, by key.
        private(set) var textTokens: [Int64: String] = [:]
        /// Per multi-valued column: the bag index of each categorical field (nil: single-valued),
        /// and the current row's values and weights.
        private let bagOf: [Int?]
        private(set) var bagKeys: [[Int64]]
        private(set) var bagWeights: [[Float]]

        init(_ csv: CSVFile, layout: TableLayout, options: ReadOptions, requireLabels: Bool) throws {
            columns = try ColumnPositions(header: csv.header, file: csv.path, layout: layout, options: options,
                                          requireLabels: requireLabels)
            self.layout = layout
            self.options = options
            path = csv.path
            keys = [Int64](repeating: 0, count: columns.categorical.count)
            dense = [Float](repeating: 0, count: columns.dense.count)
            bagOf = layout.categorical.map { layout.multiValued.firstIndex(of: $0) }
            bagKeys = Array(repeating: [], count: layout.multiValued.count)
            bagWeights = Array(repeating: [], count: layout.multiValued.count)
        }

        /// Decodes a row; false when the inconsistent-row policy drops it.
        @inline(__always)
        mutating func decode(line: Int, _ bytes: UnsafePointer<UInt8>, _ cells: UnsafeBufferPointer<CSVFile.Cell>, report: inout ReadReport) throws -> Bool {
            if cells.last?.unterminatedQuote == true {
                throw RowProblem(.unterminatedQuote, DataError(
                    file: path, line: line, "a quoted field is not closed on this line (line breaks inside quoted fields are not supported)"))
            }
            guard cells.count == columns.count else {
                throw RowProblem(.wrongColumnCount, DataError(file: path, line: line, "expected \(columns.count) columns, found \(cells.count)"))
            }
            if let di = columns.day {
                do { day = try CellDecoding.day(bytes + cells[di].start, cells[di].count) } catch {
                    throw RowProblem(.badValue, DataError(
                        file: path, line: line, column: options.dayColumn, "day must be an integer, got '\(CSVFile.text(bytes, cells[di]))'"))
                }
            }
            if let ci = columns.click, let vi = columns.conversion {
                labels = (try label(bytes, cells[ci], name: layout.clickColumn, path: path, line: line),
                          try label(bytes, cells[vi], name: layout.conversionColumn, path: path, line: line))
            }
            try decodeDense(line: line, bytes, cells)
            try decodeCategorical(line: line, bytes, cells)
            if columns.click != nil && labels.conversion == 1 && labels.click == 0 {
                return try options.inconsistent.admit(file: path, line: line, column: layout.conversionColumn, report: &report)
            }
            return true
        }

        @inline(__always)
        private mutating func decodeDense(line: Int, _ bytes: UnsafePointer<UInt8>, _ cells: UnsafeBufferPointer<CSVFile.Cell>) throws {
            for (k, ci) in columns.dense.enumerated() {
                let cell = cells[ci]
                do throws(CellDecoding.Problem) { dense[k] = try CellDecoding.dense(bytes + cell.start, cell.count) } catch {
                    throw RowProblem(error == .notANumber ? .badValue : .nonFinite, DataError(
                        file: path, line: line, column: layout.dense[k], error == .notANumber
                            ? "expected a number, got '\(CSVFile.text(bytes, cell))'"
                            : "value is not a finite number ('\(CSVFile.text(bytes, cell))')"))
                }
            }
        }

        @inline(__always)
        private mutating func decodeCategorical(line: Int, _ bytes: UnsafePointer<UInt8>, _ cells: UnsafeBufferPointer<CSVFile.Cell>) throws {
            for (k, ci) in columns.categorical.enumerated() {
                let cell = cells[ci]
                if let b = bagOf[k] {
                    try decodeBag(b, column: layout.categorical[k], line: line, bytes + cell.start, cell.count)
                    keys[k] = CategoryKey.empty
                    continue
                }
                let key = CellDecoding.categorical(bytes + cell.start, cell.count)
                if key < 0 && textTokens[key] == nil {
                    textTokens[key] = String(decoding: UnsafeBufferPointer(start: bytes + cell.start, count: cell.count), as: UTF8.self)
                }
                keys[k] = key
            }
        }

        /// A multi-valued cell (`CellDecoding.bag`), trimmed to the layout's `maxValues`.
        private mutating func decodeBag(_ b: Int, column: String, line: Int, _ p: UnsafePointer<UInt8>, _ n: Int) throws {
            bagKeys[b].removeAll(keepingCapacity: true)
            bagWeights[b].removeAll(keepingCapacity: true)
            var texts = textTokens
            textTokens = [:]  // one owner while the closure adds to it (no copy per cell)
            defer { textTokens = texts }
            do throws(CellDecoding.Problem) {
                try CellDecoding.bag(p, n, separator: layout.valueSeparator.utf8.first!, keys: &bagKeys[b], weights: &bagWeights[b]) { key, text in
                    if texts[key] == nil { texts[key] = String(decoding: text, as: UTF8.self) }
                }
            } catch {
                throw RowProblem(.badWeight, DataError(file: path, line: line, column: column,
                    "values must be id or id:weight with a finite weight, got '\(String(decoding: UnsafeBufferPointer(start: p, count: min(n, 40)), as: UTF8.self))'"))
            }
            CellDecoding.keepHighest(layout.maxValues, keys: &bagKeys[b], weights: &bagWeights[b])
        }
    }

    @inline(__always)
    private static func label(_ bytes: UnsafePointer<UInt8>, _ cell: CSVFile.Cell, name: String,
                              path: String, line: Int) throws -> Float {
        if let v = BadRowPolicy.label(bytes + cell.start, cell.count) { return v }
        throw RowProblem(.labelNotBinary, DataError(
            file: path, line: line, column: name, "label must be 0 or 1, got '\(CSVFile.text(bytes, cell))'"))
    }
}
