import Funnel

/// A small byte-level JSON reader for `/v1/predict` bodies. Foundation's decoders spent ~90%
/// of a 100-row request in dynamic casts and allocations; this reads the rows straight into
/// `JSONValue`s, and numbers through the same parser the CSV reader uses, so a value means the
/// same thing in a file and in a request.
struct RequestParser {
    private let bytes: [UInt8]
    private var i = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    struct Malformed: Error { let offset: Int; let what: String }

    /// Parses `{"rows": [{…}, …], …}`; other top-level keys are skipped.
    static func rows(_ bytes: [UInt8]) throws -> [[String: JSONValue]] {
        var p = RequestParser(bytes)
        var rows: [[String: JSONValue]]?
        try p.object { key, p in
            if key == "rows" { rows = try p.array { p in try p.flatObject() } } else { try p.skipValue() }
        }
        p.whitespace()
        guard p.i == p.bytes.count else { throw Malformed(offset: p.i, what: "trailing characters") }
        guard let rows else { throw Malformed(offset: 0, what: "no \"rows\" key") }
        return rows
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

    private mutating func object(_ member: (String, inout RequestParser) throws -> Void) throws {
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

    private mutating func array<T>(_ element: (inout RequestParser) throws -> T) throws -> [T] {
        try expect(91)  // [
        var out: [T] = []
        if peek() == 93 { i += 1; return out }
        while true {
            out.append(try element(&self))
            guard let c = peek() else { throw Malformed(offset: i, what: "unterminated array") }
            i += 1
            if c == 93 { return out }
            guard c == 44 else { throw Malformed(offset: i - 1, what: "expected ',' or ']'") }
        }
    }

    /// A row: an object of scalars (nested values become `.other`, for a located error later).
    private mutating func flatObject() throws -> [String: JSONValue] {
        var row: [String: JSONValue] = [:]
        row.reserveCapacity(32)
        try object { key, p in row[key] = try p.scalar() }
        return row
    }

    private mutating func scalar() throws -> JSONValue {
        guard let c = peek() else { throw Malformed(offset: i, what: "missing value") }
        switch c {
        case 34: return .string(try string())
        case 123, 91: try skipValue(); return .other
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

    private mutating func skipValue() throws {
        guard let c = peek() else { throw Malformed(offset: i, what: "missing value") }
        switch c {
        case 123: try object { _, p in try p.skipValue() }
        case 91: _ = try array { p in try p.skipValue() }
        default: _ = try scalar()
        }
    }
}
