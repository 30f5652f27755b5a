/// A raw JSON value of a request row (see `RequestParser`), kept apart by kind so the row
/// decoder can say exactly which type it got where another was needed.
public enum JSONValue: Sendable, Equatable {
    case integer(Int64)
    /// A number that is not an integer, with its literal (what it would read as in a CSV cell).
    case number(Double, literal: String)
    case string(String)
    case bool(Bool)
    case null
    /// An array of scalars or of `[id, weight]` pairs: a multi-valued field's values.
    case list([JSONValue])
    case other

    /// The value of a number or integer (nil for any other kind).
    var numberValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .number(let d, _): return d
        default: return nil
        }
    }

    var kind: String {
        switch self {
        case .integer: return "an integer"
        case .number: return "a number"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .null: return "null"
        case .list: return "an array"
        case .other: return "an array or object"
        }
    }
}
