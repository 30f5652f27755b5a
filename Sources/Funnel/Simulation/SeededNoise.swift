import Foundation

/// Deterministic per-id randomness for the simulators: a hash of (seed, a, b, c) and a
/// standard normal drawn from it, so an id's effects need no tables and any vocabulary fits in
/// memory; plus Zipf popularity.
struct SeededNoise {
    let seed: UInt64

    @inline(__always)
    func hash(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var z = seed &* 0x9E37_79B9_7F4A_7C15 ^ a &* 0xBF58_476D_1CE4_E5B9 ^ b &* 0x94D0_49BB_1331_11EB ^ c &+ 0x2545_F491_4F6C_DD1D
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    func gaussian(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> Double {
        let h1 = hash(a, b, c), h2 = hash(a &+ 7919, b, c &+ 104_729)
        let u1 = max(Double(h1 >> 11) * 0x1.0p-53, 1e-300), u2 = Double(h2 >> 11) * 0x1.0p-53
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// The cumulative distribution of Zipf(`exponent`) over ranks 0..<n.
    static func zipfCDF(_ n: Int, exponent: Double) -> [Double] {
        var cdf = [Double](repeating: 0, count: n)
        var acc = 0.0
        for k in 0..<n { acc += 1 / pow(Double(k + 1), exponent); cdf[k] = acc }
        for k in 0..<n { cdf[k] /= acc }
        return cdf
    }

    /// The rank whose CDF bracket holds `u`.
    @inline(__always)
    static func sample(_ cdf: [Double], _ u: Double) -> Int {
        var lo = 0, hi = cdf.count - 1
        while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < u { lo = mid + 1 } else { hi = mid } }
        return lo
    }
}
