/// A raw JSON value of a request row (see `RequestParser`), kept apart by kind so the row
/// decoder can say exactly which type it got where another was needed.
public enum JSONValue: Sendable, Equatable {
    case integer(Int64)
    /// A number that is not an integer, with its literal (what it would read as in a CSV cell).
    case number(Double, literal: String)
    case string(String)
    case bool(Bool)
    case null
    case other

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
