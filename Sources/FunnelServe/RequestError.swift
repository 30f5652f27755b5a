/// A request problem that maps to an HTTP status (400 by default), naming the row and field.
public struct RequestError: Error, Sendable {
    public var message: String
    public var row: Int?
    public var field: String?
    public var status: Int

    public init(_ message: String, row: Int? = nil, field: String? = nil, status: Int = 400) {
        self.message = message; self.row = row; self.field = field; self.status = status
    }
}
