/// An input problem, located: `FILE:LINE: column 'NAME': what is wrong`.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int?
    public let column: String?
    public let message: String

    public init(file: String, line: Int? = nil, column: String? = nil, _ message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// One line: control characters from the input (a raw `\r`, an escape sequence) are escaped.
    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let column { s += "column '\(column)': " }
        return CSVFile.printable(s + message)
    }
}

/// A problem that is not tied to an input row (bad flags, bad model directory, …).
public struct FunnelError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { CSVFile.printable(message) }
}
