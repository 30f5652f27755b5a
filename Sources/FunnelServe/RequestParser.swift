import Funnel

/// A small byte-level JSON reader for `/v1/predict` bodies. Foundation's decoders spent ~90%
/// of a 100-row request in dynamic casts and allocations; this reads the rows straight into
/// `JSONValue`s, and numbers through the same parser the CSV reader uses, so a value means the
/// same thing in a file and in a request.
///
/// Hostile bodies cost bounded work and memory: nesting deeper than `Limits.depth` is refused
/// (the reader recurses at most that deep), the row count and each row's member count are
/// enforced while parsing, every value kept is charged to `Limits.parsedBytes` as it is made
/// (an 8 MiB body of four million array elements would otherwise cost ~240 MB), and a field the
/// model does not read is skipped unmaterialised — so a request holds at most what it is
/// allowed to send, whatever its shape.
struct RequestParser {
    private let bytes: [UInt8]
    private var i = 0
    private let limits: Limits
    /// What the values kept so far cost, as charged by `charge`.
    private var parsed = 0

    /// What one request may contain.
    struct Limits: Sendable {
        var rows = 10_000
        var fieldsPerRow = 4_096
        var depth = 64
        /// The parsed rows' memory, estimated as they are made (see `Cost`); 413 beyond it.
        var parsedBytes = 40 << 20
        /// The fields the model reads; any other is kept as `.other` without parsing it into
        /// values (nil: keep every field).
        var known: Set<String>? = nil
    }

    /// Bytes charged per value kept: what Swift allocates for it, with array growth's slack.
    enum Cost {
        static let scalar = 48       // a JSONValue in an array (stride 32, storage grown ×1.5 on average)
        static let list = 64         // an array's header and the enum holding it
        static let field = 96        // a dictionary entry: key, value, hash slot
        static let row = 160         // a row's dictionary storage
    }

    init(_ bytes: [UInt8], limits: Limits) {
        self.bytes = bytes
        self.limits = limits
    }

    struct Malformed: Error { let offset: Int; let what: String }
    /// More rows than `Limits.rows` (HTTP 413).
    struct TooManyRows: Error { let limit: Int }
    /// Parsed values past `Limits.parsedBytes` (HTTP 413).
    struct TooManyValues: Error { let limit: Int }

    private mutating func charge(_ bytes: Int) throws {
        parsed += bytes
        guard parsed <= limits.parsedBytes else { throw TooManyValues(limit: limits.parsedBytes) }
    }

    /// Parses `{"rows": [{…}, …], …}`; other top-level keys are skipped (within the depth limit).
    static func rows(_ bytes: [UInt8], limits: Limits = Limits()) throws -> [[String: JSONValue]] {
        try body(bytes, limits: limits).rows
    }

    /// A predict body: its rows and, in the ranking form `{"request": {…}, "rows": [{…}, …]}`,
    /// the fields the rows share, sent once (the same limits as a row: members, depth, bytes).
    struct Body {
        var request: [String: JSONValue]?
        var rows: [[String: JSONValue]]
    }

    /// Parses either form; other top-level keys are skipped (within the depth limit).
    static func body(_ bytes: [UInt8], limits: Limits = Limits()) throws -> Body {
        var p = RequestParser(bytes, limits: limits)
        var rows: [[String: JSONValue]]?
        var request: [String: JSONValue]?
        try p.object(depth: 1) { key, p in
            if key == "request" {
                try p.charge(Cost.row)
                request = try p.flatObject(row: "the request")
                return
            }
            guard key == "rows" else { return try p.skipValue(depth: 2) }
            var out: [[String: JSONValue]] = []
            try p.array(depth: 2) { p in
                guard out.count < p.limits.rows else { throw TooManyRows(limit: p.limits.rows) }
                try p.charge(Cost.row)
                out.append(try p.flatObject(row: "row \(out.count)"))
            }
            rows = out
        }
        p.whitespace()
        guard p.i == p.bytes.count else { throw Malformed(offset: p.i, what: "trailing characters") }
        guard let rows else { throw Malformed(offset: 0, what: "no \"rows\" key") }
        return Body(request: request, rows: rows)
    }

    private mutating func whitespace() {
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 10 || bytes[i] == 13 || bytes[i] == 9 { i += 1 }
    }

    private mutating func expect(_ c: UInt8) throws {
        whitespace()
        guard i < bytes.count, bytes[i] == c else { throw Malformed(offset: i, what: "expected '\(Character(UnicodeScalar(c)))'") }
        i += 1
    }

    private mutating func peek() -> UInt8? { whitespace(); return i < bytes.count ? bytes[i] : nil }

    private mutating func object(depth: Int, _ member: (String, inout RequestParser) throws -> Void) throws {
        guard depth <= limits.depth else { throw Malformed(offset: i, what: "nesting deeper than \(limits.depth) levels") }
        try expect(123)  // {
        if peek() == 125 { i += 1; return }
        while true {
            let key = try string()
            try expect(58)  // :
            try member(key, &self)
            guard let c = peek() else { throw Malformed(offset: i, what: "unterminated object") }
            i += 1
            if c == 125 { return }
            guard c == 44 else { throw Malformed(offset: i - 1, what: "expected ',' or '}'") }
        }
    }

    private mutating func array(depth: Int, _ element: (inout RequestParser) throws -> Void) throws {
        guard depth <= limits.depth else { throw Malformed(offset: i, what: "nesting deeper than \(limits.depth) levels") }
        try expect(91)  // [
        if peek() == 93 { i += 1; return }
        while true {
            try element(&self)
            guard let c = peek() else { throw Malformed(offset: i, what: "unterminated array") }
            i += 1
            if c == 93 { return }
            guard c == 44 else { throw Malformed(offset: i - 1, what: "expected ',' or ']'") }
        }
    }

    /// A row: an object of scalars (nested values become `.other`, for a located error later),
    /// at most `Limits.fieldsPerRow` members.
    private mutating func flatObject(row: String) throws -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        values.reserveCapacity(32)
        var members = 0
        try object(depth: 3) { key, p in
            members += 1
            guard members <= p.limits.fieldsPerRow else {
                throw Malformed(offset: p.i, what: "\(row) has more than \(p.limits.fieldsPerRow) fields")
            }
            try p.charge(Cost.field + key.utf8.count)
            if let known = p.limits.known, !known.contains(key) {
                try p.skipValue(depth: 4)  // read for its syntax, never kept: the decoder ignores or names it
                values[key] = .other
            } else {
                values[key] = try p.scalar(depth: 4)
            }
        }
        return values
    }

    private mutating func scalar(depth: Int) throws -> JSONValue {
        guard let c = peek() else { throw Malformed(offset: i, what: "missing value") }
        switch c {
        case 34:
            let text = try string()
            try charge(text.utf8.count > 15 ? 32 + text.utf8.count : 0)  // short strings live inline
            return .string(text)
        case 91: return try list(depth: depth)
        case 123: try skipValue(depth: depth); return .other
        case 116: try literal("true"); return .bool(true)
        case 102: try literal("false"); return .bool(false)
        case 110: try literal("null"); return .null
        default:
            let start = i
            while i < bytes.count, let b = Optional(bytes[i]), b == 45 || b == 43 || b == 46 || b == 101 || b == 69 || (b >= 48 && b <= 57) { i += 1 }
            guard i > start else { throw Malformed(offset: start, what: "unexpected character") }
            return try bytes.withUnsafeBufferPointer { buf -> JSONValue in
                let p = buf.baseAddress! + start, n = i - start
                if let v = NumberParsing.parseInteger(p, n) { return .integer(v) }
                if let d = NumberParsing.parseDouble(p, n), d.isFinite {
                    return .number(d, literal: String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
                }
                throw Malformed(offset: start, what: "malformed number")
            }
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == Array(w) else {
            throw Malformed(offset: i, what: "unexpected literal")
        }
        i += w.count
    }

    private mutating func string() throws -> String {
        try expect(34)
        var out: [UInt8] = []
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if b == 34 { return String(decoding: out, as: UTF8.self) }
            if b != 92 { out.append(b); continue }
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case 34, 92, 47: out.append(e)
            case 98: out.append(8)
            case 102: out.append(12)
            case 110: out.append(10)
            case 114: out.append(13)
            case 116: out.append(9)
            case 117:
                guard i + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                    throw Malformed(offset: i, what: "bad \\u escape")
                }
                i += 4
                out.append(contentsOf: Array(String(UnicodeScalar(code).map(Character.init) ?? "\u{FFFD}").utf8))
            default: throw Malformed(offset: i - 1, what: "bad escape")
            }
        }
        throw Malformed(offset: i, what: "unterminated string")
    }

    /// An array in a row: scalars, or `[id, weight]` pairs (a multi-valued field's values);
    /// anything nested deeper becomes `.other`, refused later with its row and field.
    private mutating func list(depth: Int) throws -> JSONValue {
        var items: [JSONValue] = []
        var flat = true
        try charge(Cost.list)
        try array(depth: depth) { p in
            try p.charge(Cost.scalar)
            guard p.peek() == 91 else {
                let v = try p.scalar(depth: depth + 1)
                if case .other = v { flat = false }
                if case .list = v { flat = false }
                items.append(v)
                return
            }
            var pair: [JSONValue] = []
            try p.charge(Cost.list)
            try p.array(depth: depth + 1) { q in
                try q.charge(Cost.scalar)
                let v = try q.scalar(depth: depth + 2)
                if case .list = v { flat = false }
                if case .other = v { flat = false }
                pair.append(v)
            }
            items.append(.list(pair))
        }
        return flat ? .list(items) : .other
    }

    /// Skips a value, recursing at most `Limits.depth` levels deep.
    private mutating func skipValue(depth: Int) throws {
        guard let c = peek() else { throw Malformed(offset: i, what: "missing value") }
        switch c {
        case 123: try object(depth: depth) { _, p in try p.skipValue(depth: depth + 1) }
        case 91: try array(depth: depth) { p in try p.skipValue(depth: depth + 1) }
        default: _ = try scalar(depth: depth)
        }
    }
}
