import Funnel

/// Turns JSON request rows into the `RawTable` the CSV reader produces from the same cells, so
/// every model kind then transforms them exactly as a file: `FeatureSchema.encode` for a neural
/// model, the fitted `TabularFeaturePipeline` for a GBDT model.
///
/// Each JSON scalar stands for the text it would have in a CSV cell and is decoded by
/// `CellDecoding`, as the file reader decodes cells: an integer or a number by its literal, a
/// string by its contents, `null` as the empty cell (a dense field's training mean, a
/// categorical field's empty-value key — for every field kind and both model kinds). Booleans,
/// arrays and objects have no cell text and are refused with the row and field.
public struct RequestTableDecoder: Sendable {
    public let layout: TableLayout
    /// Columns a request must send (a GBDT model's dropped columns may be left out).
    public let required: Set<String>
    /// The day column, when the model reads one (GBDT day of week).
    public let dayColumn: String?
    public let rejectUnknownFields: Bool
    private let known: Set<String>
    /// Columns a request row may name without being unknown.
    public var knownFieldCount: Int { known.count }
    /// The columns a request row may name; the parser keeps no other field's value.
    var knownFields: Set<String> { known }

    public init(layout: TableLayout, required: Set<String>, dayColumn: String?, rejectUnknownFields: Bool) {
        self.layout = layout
        self.required = required
        self.dayColumn = dayColumn
        self.rejectUnknownFields = rejectUnknownFields
        // Labels and ignored training columns may ride along; they are not features.
        known = Set(layout.categorical + layout.dense + layout.ignored + [layout.clickColumn, layout.conversionColumn]
                    + (dayColumn.map { [$0] } ?? []))
    }

    /// A neural model: every categorical and dense column of its schema is required.
    public init(schema: FeatureSchema, rejectUnknownFields: Bool) {
        self.init(layout: schema.layout, required: Set(schema.layout.categorical + schema.layout.dense), dayColumn: nil,
                  rejectUnknownFields: rejectUnknownFields)
    }

    /// A GBDT model: the pipeline's columns are required (dropped ones optional), and the day
    /// column when the pipeline uses the day of week.
    public init(pipeline: TabularFeaturePipeline, dayColumn: String?, rejectUnknownFields: Bool) {
        self.init(layout: pipeline.layout, required: Set(pipeline.categorical + pipeline.numeric),
                  dayColumn: pipeline.hasDay ? dayColumn : nil, rejectUnknownFields: rejectUnknownFields)
    }

    /// `request`: fields every row shares, sent once (the ranking form); a field may be given
    /// there or in a row, not both. The request's values are decoded once and stand in every
    /// row; the table's rows then form one request of its categorical fields (`RawTable.requests`).
    public func decode(_ rows: [[String: JSONValue]], request: [String: JSONValue]? = nil) throws -> RawTable {
        guard let request else { return try decodeRows(rows, shared: nil) }
        let names = request.keys.sorted()
        if rejectUnknownFields, let unknown = names.first(where: { !known.contains($0) }) {
            throw RequestError("unknown field in the request (the server rejects unknown fields)", field: unknown)
        }
        for (r, row) in rows.enumerated() {
            if let both = names.first(where: { row[$0] != nil }) { throw RequestError("given both in the request and in the row", row: r, field: both) }
        }
        let shared: SharedValues
        do { shared = try SharedValues(request, decoder: self) } catch var e as RequestError {
            (e.row, e.message) = (nil, e.message + " (in the request)")
            throw e
        }
        var table = try decodeRows(rows, shared: shared)
        table.textTokens.merge(shared.textTokens) { own, _ in own }
        table.requests = RequestKeys(keys: [Int64](repeating: 0, count: rows.count), fields: layout.categorical.filter { request[$0] != nil })
        return table
    }

    /// The ranking form's request values, decoded once: per categorical field its key or bag,
    /// per dense field its value, the day (nil: the rows carry it).
    private struct SharedValues {
        var keys: [Int64?] = []
        var bags: [([Int64], [Float])?] = []
        var dense: [Float?] = []
        var day: Int?
        var textTokens: [Int64: String] = [:]

        init(_ request: [String: JSONValue], decoder d: RequestTableDecoder) throws {
            let layout = d.layout
            for name in layout.categorical {
                let value = request[name]
                let isBag = layout.multiValued.contains(name)
                keys.append(value == nil || isBag ? nil : try d.categorical(value, row: 0, field: name, textTokens: &textTokens))
                bags.append(value == nil || !isBag ? nil : try d.bag(value, row: 0, field: name, textTokens: &textTokens))
            }
            dense = try layout.dense.map { name in try request[name].map { try d.dense($0, row: 0, field: name) } }
            day = try d.dayColumn.flatMap { name in try request[name].map { try d.day($0, row: 0, field: name) } }
        }
    }

    private func decodeRows(_ rows: [[String: JSONValue]], shared: SharedValues?) throws -> RawTable {
        var table = RawTable(layout: layout, hasLabels: false, file: "request")
        var keys = [Int64](repeating: 0, count: layout.categorical.count)
        var dense = [Float](repeating: 0, count: layout.dense.count)
        let bagOf = layout.categorical.map { layout.multiValued.firstIndex(of: $0) }
        for (r, row) in rows.enumerated() {
            if rejectUnknownFields, let unknown = row.keys.sorted().first(where: { !known.contains($0) }) {
                throw RequestError("unknown field (the server rejects unknown fields)", row: r, field: unknown)
            }
            for (k, name) in layout.categorical.enumerated() {
                if let b = bagOf[k] {
                    let (values, weights) = try shared?.bags[k] ?? bag(row[name], row: r, field: name, textTokens: &table.textTokens)
                    table.appendBag(b, keys: values, weights: weights)
                    keys[k] = CategoryKey.empty
                    continue
                }
                keys[k] = try shared?.keys[k] ?? categorical(row[name], row: r, field: name, textTokens: &table.textTokens)
            }
            for (k, name) in layout.dense.enumerated() {
                dense[k] = try shared?.dense[k] ?? self.dense(row[name], row: r, field: name)
            }
            let day = try shared?.day ?? dayColumn.map { try self.day(row[$0], row: r, field: $0) }
            table.appendRow(keys: keys, dense: dense, labels: nil, day: day, sourceRow: Int32(r))
        }
        table.report.dataLines = rows.count
        table.report.rowsKept = rows.count
        return table
    }

    /// The CSV cell text of a JSON scalar; nil for a value that has none.
    private func cellText(_ v: JSONValue) -> String? {
        switch v {
        case .integer(let i): return String(i)
        case .number(_, let literal): return literal
        case .string(let s): return s
        case .null: return ""
        case .bool, .list, .other: return nil
        }
    }

    private func present(_ v: JSONValue?, row: Int, field: String) throws -> JSONValue {
        if let v { return v }
        // An optional column left out is an empty cell.
        guard !required.contains(field) else { throw RequestError("missing required field", row: row, field: field) }
        return .null
    }

    fileprivate func categorical(_ v: JSONValue?, row: Int, field: String, textTokens: inout [Int64: String]) throws -> Int64 {
        let value = try present(v, row: row, field: field)
        if case .integer(let i) = value { return i }  // what CellDecoding.categorical gives its text
        guard let text = cellText(value) else {
            throw RequestError("expected an integer, a string or null for a categorical field, got \(value.kind)", row: row, field: field)
        }
        let key = CellDecoding.categorical(text)
        if key < 0 && textTokens[key] == nil { textTokens[key] = text }
        return key
    }

    /// A multi-valued field: an array of ids (`[12, "abc"]`) or of `[id, weight]` pairs, or a
    /// string spelled as the CSV cell would be (`"12:2|7"`); `null` is an empty bag. Trimmed to
    /// the layout's `maxValues` as a file's rows are.
    fileprivate func bag(_ v: JSONValue?, row: Int, field: String, textTokens: inout [Int64: String]) throws -> ([Int64], [Float]) {
        var keys: [Int64] = [], weights: [Float] = []
        switch try present(v, row: row, field: field) {
        case .null: break
        case .list(let items):
            for item in items {
                var id = item, weight: Float = 1
                if case .list(let pair) = item {
                    guard pair.count == 2, let w = pair[1].numberValue, w.isFinite, abs(w) <= Double(Float.greatestFiniteMagnitude) else {
                        throw RequestError("a multi-valued field's pair must be [id, finite weight]", row: row, field: field)
                    }
                    id = pair[0]
                    weight = Float(w)
                }
                keys.append(try categorical(id, row: row, field: field, textTokens: &textTokens))
                weights.append(weight)
            }
        case .string(let s):
            var text = s
            do {
                try text.withUTF8 { b in
                    try CellDecoding.bag(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count, separator: layout.valueSeparator.utf8.first!,
                                         keys: &keys, weights: &weights)
                }
            } catch { throw RequestError("values must be id or id:weight with a finite weight", row: row, field: field) }
        case let other:
            keys.append(try categorical(other, row: row, field: field, textTokens: &textTokens))
            weights.append(1)
        }
        CellDecoding.keepHighest(layout.maxValues, keys: &keys, weights: &weights)
        return (keys, weights)
    }

    fileprivate func dense(_ v: JSONValue?, row: Int, field: String) throws -> Float {
        let value = try present(v, row: row, field: field)
        guard let text = cellText(value) else {
            throw RequestError("expected a number or null for a dense field, got \(value.kind)", row: row, field: field)
        }
        do throws(CellDecoding.Problem) { return try CellDecoding.dense(text) } catch {
            throw RequestError(error == .notANumber ? "expected a number or null for a dense field, got \(value.kind)"
                                                    : "value is not a finite 32-bit number", row: row, field: field)
        }
    }

    fileprivate func day(_ v: JSONValue?, row: Int, field: String) throws -> Int {
        guard let v else { throw RequestError("missing required field", row: row, field: field) }
        guard let text = cellText(v), case let parsed? = try? CellDecoding.day(text) else {
            throw RequestError("expected an integer day, got \(v.kind)", row: row, field: field)
        }
        return parsed
    }
}
