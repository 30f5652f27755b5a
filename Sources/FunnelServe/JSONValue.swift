/// A raw JSON value of a request row, kept apart by kind so the row decoder can say exactly
/// which type it got where another was needed.
public enum JSONValue: Decodable, Sendable, Equatable {
    case integer(Int64)
    case number(Double)
    case string(String)
    case bool(Bool)
    case null
    case other

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        // Bool first: some decoders read 1/0 as Bool, none reads true as a number.
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .integer(i); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        self = .other
    }

    var kind: String {
        switch self {
        case .integer: return "an integer"
        case .number: return "a number"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .null: return "null"
        case .other: return "an array or object"
        }
    }
}
