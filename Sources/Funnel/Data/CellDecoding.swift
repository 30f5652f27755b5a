/// What one cell means, whatever carried it: a CSV/TSV cell or a scalar of a JSON request row
/// (the server turns each scalar into the text it would have in a file). The file reader and
/// the server's request decoder both decode through here, so a value means the same thing on
/// every input path, and an empty cell (JSON `null`) means the same thing for every field kind:
/// a dense field's training mean, a categorical field's empty-value key.
public enum CellDecoding {
    public enum Problem: Error, Equatable {
        case notANumber
        case notFinite
        case notAnInteger
        case badWeight
    }

    /// A multi-valued cell: values separated by `separator`, each `id` or `id:weight` (weight a
    /// finite number; 1 when absent); empty values are skipped. Appends to `keys`/`weights`;
    /// `texts` receives the text of non-integer ids.
    public static func bag(_ p: UnsafePointer<UInt8>, _ n: Int, separator: UInt8, keys: inout [Int64], weights: inout [Float],
                           texts: (Int64, UnsafeBufferPointer<UInt8>) -> Void = { _, _ in }) throws(Problem) {
        var start = 0
        while start <= n {
            var end = start
            while end < n && p[end] != separator { end += 1 }
            if end > start {
                var colon = start
                while colon < end && p[colon] != 58 { colon += 1 }
                var weight: Float = 1
                if colon < end {
                    guard let w = NumberParsing.parseDouble(p + colon + 1, end - colon - 1), w.isFinite,
                          abs(w) <= Double(Float.greatestFiniteMagnitude) else { throw .badWeight }
                    weight = Float(w)
                }
                let key = categorical(p + start, colon - start)
                if key < 0 { texts(key, UnsafeBufferPointer(start: p + start, count: colon - start)) }
                keys.append(key)
                weights.append(weight)
            }
            start = end + 1
        }
    }

    /// Keeps a bag's `limit` highest-weight values (ties: the earlier ones), in their order.
    public static func keepHighest(_ limit: Int?, keys: inout [Int64], weights: inout [Float]) {
        guard let m = limit, keys.count > m else { return }
        let w = weights
        let keep = w.indices.sorted { (w[$0], -$0) > (w[$1], -$1) }.prefix(m).sorted()
        keys = keep.map { keys[$0] }
        weights = keep.map { w[$0] }
    }

    /// A dense cell: empty → NaN (standardised to 0, the training mean); otherwise a finite
    /// number within Float's range, stored as Float (every path rounds alike).
    @inline(__always)
    public static func dense(_ p: UnsafePointer<UInt8>, _ n: Int) throws(Problem) -> Float {
        if n == 0 { return .nan }
        guard let v = NumberParsing.parseDouble(p, n) else { throw .notANumber }
        guard v.isFinite, abs(v) <= Double(Float.greatestFiniteMagnitude) else { throw .notFinite }
        return Float(v)
    }

    /// A categorical cell's key: the integer it spells, else a hash of its text (the empty cell
    /// has its own key, `CategoryKey.empty`).
    @inline(__always)
    public static func categorical(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int64 { CategoryKey.of(p, n) }

    /// A day cell: an integer.
    @inline(__always)
    public static func day(_ p: UnsafePointer<UInt8>, _ n: Int) throws(Problem) -> Int {
        guard let v = NumberParsing.parseInteger(p, n), abs(v) < 1 << 31 else { throw .notAnInteger }
        return Int(v)
    }

    /// The same decodings for a cell held as a Swift string.
    public static func dense(_ text: String) throws(Problem) -> Float {
        var s = text
        let r = s.withUTF8 { b in Result { () throws(Problem) -> Float in try dense(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count) } }
        return try r.get()
    }

    public static func categorical(_ text: String) -> Int64 { CategoryKey.of(text) }

    public static func day(_ text: String) throws(Problem) -> Int {
        var s = text
        let r = s.withUTF8 { b in Result { () throws(Problem) -> Int in try day(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count) } }
        return try r.get()
    }
}
