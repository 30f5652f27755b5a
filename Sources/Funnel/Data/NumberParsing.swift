import Foundation

/// What a CSV cell looks like, for type inference.
public enum TokenKind: Int, Comparable {
    case empty = 0, integer, decimal, text
    public static func < (a: TokenKind, b: TokenKind) -> Bool { a.rawValue < b.rawValue }

    /// A column's kind from its cells' counts (indexed by raw value): text when text cells are
    /// at least as many as numbers, else decimal when any number is a decimal, else integer;
    /// empty when every cell is.
    static func majority(_ counts: [Int]) -> TokenKind {
        let numbers = counts[TokenKind.integer.rawValue] + counts[TokenKind.decimal.rawValue]
        if numbers == 0 { return counts[TokenKind.text.rawValue] > 0 ? .text : .empty }
        if counts[TokenKind.text.rawValue] >= numbers { return .text }
        return counts[TokenKind.decimal.rawValue] > 0 ? .decimal : .integer
    }
}

/// Byte-level number parsing for CSV cells: no String is created per cell.
public enum NumberParsing {
    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }

    /// Like `classify`, but a digit string too long for Int64 is an integer (an id), not a decimal.
    static func classifyForInference(_ p: UnsafePointer<UInt8>, _ n: Int) -> TokenKind {
        let kind = classify(p, n)
        guard kind == .decimal else { return kind }
        var i = n > 0 && (p[0] == 45 || p[0] == 43) ? 1 : 0
        guard i < n else { return kind }
        while i < n { if !isDigit(p[i]) { return kind }; i += 1 }
        return .integer
    }

    public static func classify(_ p: UnsafePointer<UInt8>, _ n: Int) -> TokenKind {
        if n == 0 { return .empty }
        if parseInteger(p, n) != nil { return .integer }
        if parseDouble(p, n) != nil { return .decimal }
        return .text
    }

    /// Parses an optionally signed decimal integer that fits in Int64.
    @inline(__always)
    public static func parseInteger(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int64? {
        var i = 0
        var negative = false
        if n > 0 && (p[0] == 45 || p[0] == 43) { negative = p[0] == 45; i = 1 }
        if i == n || n - i > 19 { return nil }
        var v: Int64 = 0
        while i < n {
            let d = p[i] &- 48
            if d >= 10 { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(d))
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return negative ? -v : v
    }

    private static let exactPowers: [Double] = (0...22).map { pow(10.0, Double($0)) }

    /// Parses a decimal number, including `nan` and `inf` (the caller decides whether those are
    /// allowed). The common case (≤ 19 digits, |exponent| ≤ 22) is exact by Clinger's fast path;
    /// anything else falls back to `strtod`.
    public static func parseDouble(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        if n == 0 { return nil }
        var i = 0
        var negative = false
        if p[0] == 45 || p[0] == 43 { negative = p[0] == 45; i = 1 }
        var mantissa: UInt64 = 0
        var digits = 0, exponent = 0, sawDigit = false
        while i < n && isDigit(p[i]) {
            if digits < 19 { mantissa = mantissa * 10 + UInt64(p[i] - 48); if mantissa > 0 { digits += 1 } } else { exponent += 1 }
            sawDigit = true; i += 1
        }
        if i < n && p[i] == 46 {
            i += 1
            while i < n && isDigit(p[i]) {
                if digits < 19 { mantissa = mantissa * 10 + UInt64(p[i] - 48); if mantissa > 0 { digits += 1 }; exponent -= 1 }
                sawDigit = true; i += 1
            }
        }
        if !sawDigit { return parseSpecial(p, n) }
        if i < n && (p[i] == 101 || p[i] == 69) {
            i += 1
            var eneg = false
            if i < n && (p[i] == 45 || p[i] == 43) { eneg = p[i] == 45; i += 1 }
            if i == n { return nil }
            var e = 0
            while i < n && isDigit(p[i]) { if e < 100_000 { e = e * 10 + Int(p[i] - 48) }; i += 1 }
            exponent += eneg ? -e : e
        }
        if i != n { return nil }
        if digits < 19 && mantissa < (1 << 53) && abs(exponent) <= 22 {
            let m = Double(mantissa)
            let v = exponent >= 0 ? m * exactPowers[exponent] : m / exactPowers[-exponent]
            return negative ? -v : v
        }
        return slowParse(p, n)
    }

    private static func parseSpecial(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        let s = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self).lowercased()
        switch s {
        case "nan", "+nan", "-nan": return .nan
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: return nil
        }
    }

    private static func slowParse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        var buf = [CChar](repeating: 0, count: n + 1)
        for k in 0..<n { buf[k] = CChar(bitPattern: p[k]) }
        return buf.withUnsafeBufferPointer { b -> Double? in
            var end: UnsafeMutablePointer<CChar>?
            let v = strtod(b.baseAddress!, &end)
            guard let end, end - UnsafeMutablePointer(mutating: b.baseAddress!) == n else { return nil }
            return v
        }
    }
}

/// The key of a categorical value: the integer itself when the cell is an integer, otherwise a
/// 64-bit FNV-1a hash of its bytes with the top bit set, so text categories never collide with
/// the (non-negative) integer ids that processed data sets use.
public enum CategoryKey {
    /// The key of an empty cell.
    public static let empty = of("")

    @inline(__always)
    public static func of(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int64 {
        if let v = NumberParsing.parseInteger(p, n) { return v }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<n { h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3 }
        return Int64(bitPattern: h | (1 << 63))
    }

    public static func of(_ s: String) -> Int64 {
        var s = s
        // An empty string may have no storage; with a count of 0 the pointer is never read.
        return s.withUTF8 { b in of(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count) }
    }
}
