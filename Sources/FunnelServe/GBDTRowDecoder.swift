import Funnel

/// Turns JSON rows of raw values into a `RawTable` in a GBDT model's training layout, so the
/// model's own fitted feature pipeline (codes, crosses, target encodings, group statistics)
/// transforms them exactly as it transforms a file in `funnel gbdt predict`.
public struct GBDTRowDecoder: Sendable {
    public let pipeline: TabularFeaturePipeline
    public let dayColumn: String?
    public let rejectUnknownFields: Bool
    private let known: Set<String>
    private let requiredCategorical: Set<String>
    private let requiredNumeric: Set<String>

    public init(pipeline: TabularFeaturePipeline, dayColumn: String?, rejectUnknownFields: Bool) {
        self.pipeline = pipeline
        self.dayColumn = pipeline.hasDay ? dayColumn : nil
        self.rejectUnknownFields = rejectUnknownFields
        let layout = pipeline.layout
        known = Set(layout.categorical + layout.dense + layout.ignored + [layout.clickColumn, layout.conversionColumn])
        // Dropped columns may be sent but are not required.
        requiredCategorical = Set(pipeline.categorical)
        requiredNumeric = Set(pipeline.numeric)
    }

    public func decode(_ rows: [[String: JSONValue]]) throws -> RawTable {
        let layout = pipeline.layout
        var table = RawTable(layout: layout, hasLabels: false, file: "request")
        for (r, row) in rows.enumerated() {
            if rejectUnknownFields, let unknown = row.keys.sorted().first(where: { !known.contains($0) }) {
                throw RequestError("unknown field (the server rejects unknown fields)", row: r, field: unknown)
            }
            for (k, name) in layout.categorical.enumerated() {
                let key: Int64
                switch row[name] {
                case nil:
                    guard !requiredCategorical.contains(name) else { throw RequestError("missing required field", row: r, field: name) }
                    key = CategoryKey.empty
                case .integer(let i)?: key = i
                case .string(let s)?: key = CategoryKey.of(s)
                case .number(let x)? where x == x.rounded() && abs(x) < 9e15: key = Int64(x)
                case .null?: key = CategoryKey.empty  // like an empty cell
                case let v?:
                    throw RequestError("expected an integer or a string for a categorical field, got \(v.kind)", row: r, field: name)
                }
                table.keys[k].append(key)
            }
            for (k, name) in layout.dense.enumerated() {
                let x: Double
                switch row[name] {
                case nil:
                    guard !requiredNumeric.contains(name) else { throw RequestError("missing required field", row: r, field: name) }
                    x = .nan
                case .integer(let i)?: x = Double(i)
                case .number(let n)?: x = n
                case .null?: x = .nan
                case let v?: throw RequestError("expected a number for a numeric field, got \(v.kind)", row: r, field: name)
                }
                guard x.isNaN || abs(x) <= Double(Float.greatestFiniteMagnitude) else {
                    throw RequestError("value is not a finite 32-bit number", row: r, field: name)
                }
                table.dense[k].append(Float(x))
            }
            if let day = dayColumn {
                switch row[day] {
                case .integer(let i)?: table.days.append(Int(i))
                case .number(let x)? where x == x.rounded() && abs(x) < 1e9: table.days.append(Int(x))
                case nil: throw RequestError("missing required field", row: r, field: day)
                case let v?: throw RequestError("expected an integer day, got \(v.kind)", row: r, field: day)
                }
            }
            table.sourceRows.append(Int32(r))
            table.rowCount += 1
        }
        return table
    }
}
