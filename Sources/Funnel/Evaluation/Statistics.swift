import Foundation

/// Summary statistics and Welch's t-test for repeated runs (esmm-ablation §3: means, standard
/// errors and two-sided t-tests at p < 0.01).
public enum Statistics {
    public struct Summary: Codable, Sendable, Equatable {
        public var n: Int
        public var mean: Double
        /// Sample standard deviation (n − 1); 0 for a single run.
        public var std: Double
        /// Standard error of the mean, std / √n.
        public var se: Double
    }

    public static func summary(_ xs: [Double]) -> Summary? {
        guard !xs.isEmpty else { return nil }
        let n = Double(xs.count)
        let mean = xs.reduce(0, +) / n
        let variance = xs.count > 1 ? xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1) : 0
        let std = variance.squareRoot()
        return Summary(n: xs.count, mean: mean, std: std, se: std / n.squareRoot())
    }

    /// Two-sided p-value of Welch's unequal-variance t-test for equal means. nil when either
    /// sample has fewer than two values; 1 when both are constant and equal, 0 when constant and different.
    public static func welchTTest(_ a: [Double], _ b: [Double]) -> Double? {
        guard a.count >= 2, b.count >= 2, let sa = summary(a), let sb = summary(b) else { return nil }
        let va = sa.std * sa.std / Double(sa.n), vb = sb.std * sb.std / Double(sb.n)
        let se2 = va + vb
        if se2 == 0 { return sa.mean == sb.mean ? 1 : 0 }
        let t = (sa.mean - sb.mean) / se2.squareRoot()
        let df = se2 * se2 / (va * va / Double(sa.n - 1) + vb * vb / Double(sb.n - 1))
        return studentTwoSidedP(t: t, df: df)
    }

    /// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
    public static func studentTwoSidedP(t: Double, df: Double) -> Double {
        let x = df / (df + t * t)
        return min(1, max(0, regularizedIncompleteBeta(a: df / 2, b: 0.5, x: x)))
    }

    /// I_x(a, b) by the continued fraction of Numerical Recipes (Lentz's method).
    public static func regularizedIncompleteBeta(a: Double, b: Double, x: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let lnPowers: Double = a * log(x) + b * log(1 - x)
        let lnFront = lnGammas + lnPowers
        if x > (a + 1) / (a + b + 2) {
            return 1 - regularizedIncompleteBeta(a: b, b: a, x: 1 - x)
        }
        let front = exp(lnFront) / a
        let tiny = 1e-300
        var f = 1.0, c = 1.0, d = 0.0
        for i in 0...400 {
            let m = Double(i / 2)
            var numerator: Double
            if i == 0 { numerator = 1 }
            else if i % 2 == 0 { numerator = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)) }
            else { numerator = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1)) }
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            d = 1 / d
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            let cd = c * d
            f *= cd
            if abs(1 - cd) < 1e-14 { break }
        }
        return front * (f - 1)
    }
}
