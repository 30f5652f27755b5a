import Foundation

/// Appends CSV text into one growing byte buffer, formatting numbers without Foundation's
/// per-call formatter cost (the simulator and `predict` write millions of cells).
public struct CSVWriter {
    public private(set) var bytes: [UInt8] = []

    public init() { bytes.reserveCapacity(1 << 20) }

    public var data: Data { Data(bytes) }

    public mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }
    @inline(__always) public mutating func comma() { bytes.append(44) }
    @inline(__always) public mutating func newline() { bytes.append(10) }
    @inline(__always) public mutating func tab() { bytes.append(9) }

    public mutating func appendInt(_ v: Int) {
        if v < 0 { bytes.append(45); appendInt(-v); return }
        if v >= 10 { appendInt(v / 10) }
        bytes.append(UInt8(48 + v % 10))
    }

    /// Fixed-point with `decimals` digits, rounded half away from zero; for |v| < 1e12.
    public mutating func appendFixed(_ v: Double, decimals: Int) {
        var x = v
        if x < 0 { bytes.append(45); x = -x }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let n = Int((x * scale).rounded())
        let intPart = n / Int(scale), frac = n % Int(scale)
        appendInt(intPart)
        if decimals > 0 {
            bytes.append(46)
            var digits = [UInt8](repeating: 48, count: decimals)
            var f = frac
            for i in stride(from: decimals - 1, through: 0, by: -1) { digits[i] = UInt8(48 + f % 10); f /= 10 }
            bytes.append(contentsOf: digits)
        }
    }

    /// Shortest text that reads back as the same Float (Swift's description), for predictions.
    public mutating func appendFloat(_ v: Float) { bytes.append(contentsOf: v.description.utf8) }
}
