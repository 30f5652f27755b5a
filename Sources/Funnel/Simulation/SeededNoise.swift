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

    /// The personalised term of both logits: user and item latent vectors (4 dimensions), the
    /// click term their dot product, the conversion term ρ·(that) + √(1−ρ²)·(an independent
    /// pair's), both scaled by 0.5/√4 so the term's spread does not depend on the dimension.
    func interaction(user: Int, item: Int, rho: Double) -> (click: Double, conversion: Double) {
        let latentDim = 4, interactionScale = 0.5
        var dc = 0.0, dv = 0.0
        for k in 0..<latentDim {
            let pu = gaussian(UInt64(user), 10 + UInt64(k), 3), qi = gaussian(UInt64(item), 20 + UInt64(k), 4)
            let pu2 = gaussian(UInt64(user), 30 + UInt64(k), 5), qi2 = gaussian(UInt64(item), 40 + UInt64(k), 6)
            dc += pu * qi
            dv += rho * pu * qi + (1 - rho * rho).squareRoot() * pu2 * qi2
        }
        let scale = interactionScale / Double(latentDim).squareRoot()
        return (scale * dc, scale * dv)
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

    /// The click and conversion biases that make a calibration sample's mean pCTR `ctr` and its
    /// click-weighted mean pCVR `cvr`, by bisection.
    static func biases(clickLogits zcs: [Double], conversionLogits zvs: [Double], ctr: Double, cvr: Double) -> (Double, Double) {
        let n = zcs.count
        func solve(_ target: Double, _ mean: (Double) -> Double) -> Double {
            var lo = -20.0, hi = 20.0
            for _ in 0..<60 { let mid = (lo + hi) / 2; if mean(mid) < target { lo = mid } else { hi = mid } }
            return (lo + hi) / 2
        }
        let ctrBias = solve(ctr) { b in zcs.reduce(0) { $0 + Sigmoid.value(b + $1) } / Double(n) }
        let weights = zcs.map { Sigmoid.value(ctrBias + $0) }
        let totalWeight = weights.reduce(0, +)
        let cvrBias = solve(cvr) { b in
            var s = 0.0
            for i in 0..<n { s += weights[i] * Sigmoid.value(b + zvs[i]) }
            return s / totalWeight
        }
        return (ctrBias, cvrBias)
    }
}
