import Funnel

/// A request problem that maps to HTTP 400, naming the row and field.
public struct RequestError: Error, Sendable {
    public var message: String
    public var row: Int?
    public var field: String?
    public var status: Int

    public init(_ message: String, row: Int? = nil, field: String? = nil, status: Int = 400) {
        self.message = message; self.row = row; self.field = field; self.status = status
    }
}

/// Turns JSON rows of raw values (as in the training CSV) into model input with exactly the
/// model's stored schema: the same category keys, vocabularies and dense normalisation as
/// `funnel predict` applies to a CSV row.
public struct RowDecoder: Sendable {
    public let schema: FeatureSchema
    public let rejectUnknownFields: Bool
    private let known: Set<String>

    public init(schema: FeatureSchema, rejectUnknownFields: Bool) {
        self.schema = schema
        self.rejectUnknownFields = rejectUnknownFields
        let layout = schema.layout
        // Labels and ignored training columns may ride along; they are not features.
        known = Set(layout.categorical + layout.dense + layout.ignored + [layout.clickColumn, layout.conversionColumn])
    }

    public func decode(_ rows: [[String: JSONValue]]) throws -> EncodedDataset {
        let f = schema.fields.count, d = schema.dense.count
        let offsets = schema.fieldOffsets
        var ids = [Int32](repeating: 0, count: rows.count * f)
        var dense = [Float](repeating: 0, count: rows.count * d)
        for (r, row) in rows.enumerated() {
            if rejectUnknownFields, let unknown = row.keys.sorted().first(where: { !known.contains($0) }) {
                throw RequestError("unknown field (the server rejects unknown fields)", row: r, field: unknown)
            }
            for (k, vocab) in schema.fields.enumerated() {
                guard let v = row[vocab.name] else { throw RequestError("missing required field", row: r, field: vocab.name) }
                let key: Int64
                switch v {
                case .integer(let i): key = i
                case .string(let s): key = CategoryKey.of(s)
                case .number(let x) where x == x.rounded() && abs(x) < 9e15: key = Int64(x)
                default:
                    throw RequestError("expected an integer or a string for a categorical field, got \(v.kind)", row: r, field: vocab.name)
                }
                ids[r * f + k] = Int32(offsets[k]) + vocab.id(of: key)
            }
            for (k, stat) in schema.dense.enumerated() {
                guard let v = row[stat.name] else { throw RequestError("missing required field", row: r, field: stat.name) }
                let x: Double
                switch v {
                case .integer(let i): x = Double(i)
                case .number(let n): x = n
                case .null: x = .nan  // like an empty CSV cell: the training mean
                default: throw RequestError("expected a number for a dense field, got \(v.kind)", row: r, field: stat.name)
                }
                guard x.isNaN || abs(x) <= Double(Float.greatestFiniteMagnitude) else {
                    throw RequestError("value is not a finite 32-bit number", row: r, field: stat.name)
                }
                // The CSV reader stores dense values as Float too, so both paths round alike.
                dense[r * d + k] = schema.standardized(Float(x), dense: k)
            }
        }
        return EncodedDataset(rowCount: rows.count, fields: f, denseCount: d, ids: ids, dense: dense,
                              click: nil, conversion: nil, sourceRows: (0..<rows.count).map { Int32($0) })
    }
}
