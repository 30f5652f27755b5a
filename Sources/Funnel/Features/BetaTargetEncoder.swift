import Foundation

/// A statistic of the Beta posterior a category is encoded by (two-stage LightGBM paper, Eq. 3–8).
public enum BetaStatistic: String, Codable, CaseIterable, Sendable {
    case mean, mode, median, variance, skewness, kurtosis
}

/// Which formulas turn (α, β) into the six statistics.
///
/// `standard` is the Beta distribution's own: mean, mode (0 or 1 at the boundary when α ≤ 1 or β ≤ 1,
/// the mean when both are), Kerman's median approximation (α − 1/3)/(α + β − 2/3) (the paper's Eq. 5,
/// clamped to [0, 1]), variance, skewness 2(β − α)√(α+β+1) / ((α+β+2)√(αβ)) and excess kurtosis
/// 6[(α−β)²(α+β+1) − αβ(α+β+2)] / (αβ(α+β+2)(α+β+3)).
/// `paper` reproduces Eq. 3–8 exactly as printed, including Eq. 7 (which is not the Beta skewness) and
/// Eq. 8 (which reduces to (α+β+1)/((α+β+2)(α+β)) − 3, nearly the constant −3), for replication.
public enum BetaFormulas: String, Codable, CaseIterable, Sendable {
    case standard, paper
}

/// A Beta(α, β) distribution and its summary statistics.
public struct BetaDistribution: Equatable, Sendable {
    public var alpha: Double
    public var beta: Double

    public init(alpha: Double, beta: Double) { self.alpha = alpha; self.beta = beta }

    public func value(_ statistic: BetaStatistic, formulas: BetaFormulas = .standard) -> Double {
        let a = alpha, b = beta, s = a + b
        switch (statistic, formulas) {
        case (.mean, _):
            return a / s
        case (.mode, .paper):
            return (a - 1) / (s - 2)
        case (.mode, .standard):
            if a > 1 && b > 1 { return (a - 1) / (s - 2) }
            if a <= 1 && b > 1 { return 0 }
            if a > 1 && b <= 1 { return 1 }
            return a / s
        case (.median, .paper):
            return (a - 1.0 / 3) / (s - 2.0 / 3)
        case (.median, .standard):
            return min(1, max(0, (a - 1.0 / 3) / (s - 2.0 / 3)))
        case (.variance, _):
            return a * b / (s * s * (s + 1))
        case (.skewness, .paper):
            return (a - b) / (a * b * (s + 1)).squareRoot()
        case (.skewness, .standard):
            return 2 * (b - a) * (s + 1).squareRoot() / ((s + 2) * (a * b).squareRoot())
        case (.kurtosis, .paper):
            return a * b * (s + 1) / ((s + 2) * s * (a * b)) - 3
        case (.kurtosis, .standard):
            return 6 * ((a - b) * (a - b) * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3))
        }
    }
}

/// Beta target encoding of one categorical column against one binary target (paper §3.2).
///
/// The prior is Beta(α₀, β₀) with α₀ = μN₀, β₀ = (1 − μ)N₀, μ the target's mean and N₀ the prior
/// strength. A category seen N ≥ N_min times with n positives has the posterior
/// Beta(α₀ + n, β₀ + N − n); a rarer or unseen category gets the prior itself. Each statistic of the
/// posterior becomes one numeric feature.
///
/// Training rows must not see their own label, or the encoding memorises it (a category seen a few
/// times "predicts" its rows perfectly). `encodeOutOfFold` therefore encodes each training row
/// with statistics from the other folds only; `encode` (validation, test, serving) uses all
/// training rows.
public struct BetaTargetEncoder: Codable, Equatable, Sendable {
    public var priorStrength: Double
    public var minCount: Int
    public var statistics: [BetaStatistic]
    public var formulas: BetaFormulas
    /// Fitted on all training rows: μ, and per category (sorted keys) the positives n and count N.
    public private(set) var priorMean: Double = 0
    public private(set) var keys: [Int64] = []
    public private(set) var positives: [Double] = []
    public private(set) var counts: [Double] = []
    private var index: [Int64: Int] = [:]

    enum CodingKeys: String, CodingKey {
        case priorStrength = "prior_strength", minCount = "min_count", statistics, formulas
        case priorMean = "prior_mean", keys, positives, counts
    }

    public init(priorStrength: Double, minCount: Int, statistics: [BetaStatistic], formulas: BetaFormulas) throws {
        guard priorStrength > 0, priorStrength.isFinite else { throw FunnelError("target encoding: prior_strength must be > 0") }
        guard minCount >= 1 else { throw FunnelError("target encoding: min_count must be at least 1") }
        guard !statistics.isEmpty else { throw FunnelError("target encoding: statistics must not be empty") }
        self.priorStrength = priorStrength
        self.minCount = minCount
        self.statistics = statistics
        self.formulas = formulas
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(priorStrength: try c.decode(Double.self, forKey: .priorStrength),
                      minCount: try c.decode(Int.self, forKey: .minCount),
                      statistics: try c.decode([BetaStatistic].self, forKey: .statistics),
                      formulas: try c.decode(BetaFormulas.self, forKey: .formulas))
        priorMean = try c.decode(Double.self, forKey: .priorMean)
        keys = try c.decode([Int64].self, forKey: .keys)
        positives = try c.decode([Double].self, forKey: .positives)
        counts = try c.decode([Double].self, forKey: .counts)
        guard keys.count == positives.count, keys.count == counts.count else {
            throw DecodingError.dataCorruptedError(forKey: .keys, in: c, debugDescription: "keys, positives and counts differ in length")
        }
        buildIndex()
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(priorStrength, forKey: .priorStrength)
        try c.encode(minCount, forKey: .minCount)
        try c.encode(statistics, forKey: .statistics)
        try c.encode(formulas, forKey: .formulas)
        try c.encode(priorMean, forKey: .priorMean)
        try c.encode(keys, forKey: .keys)
        try c.encode(positives, forKey: .positives)
        try c.encode(counts, forKey: .counts)
    }

    private mutating func buildIndex() {
        index = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
    }

    /// The posterior for a category with `n` positives in `count` rows under prior mean `mu`.
    public func posterior(positives n: Double, count: Double, priorMean mu: Double) -> BetaDistribution {
        let a0 = mu * priorStrength, b0 = (1 - mu) * priorStrength
        if count < Double(minCount) { return BetaDistribution(alpha: a0, beta: b0) }
        return BetaDistribution(alpha: a0 + n, beta: b0 + count - n)
    }

    /// Fits on all training rows (the encoding later rows get).
    public mutating func fit(keys rowKeys: [Int64], labels: [Float]) {
        fit(counts: CategoryLabelCounts(keys: rowKeys, labels: labels, fold: nil, folds: 1))
    }

    /// Fits from counts (one rank's, or every rank's merged: the same encoder one machine fits).
    public mutating func fit(counts c: CategoryLabelCounts) {
        keys = c.keys
        positives = c.positives
        counts = c.counts
        priorMean = c.rows > 0 ? c.positiveRows / c.rows : 0
        buildIndex()
    }

    /// The posterior a (non-training) row with category `key` gets.
    public func posterior(for key: Int64) -> BetaDistribution {
        if let i = index[key] { return posterior(positives: positives[i], count: counts[i], priorMean: priorMean) }
        return posterior(positives: 0, count: 0, priorMean: priorMean)
    }

    /// Writes the statistics of each row's category into `out[s][row]` (one array per statistic).
    public func encode(keys rowKeys: [Int64], into out: inout [[Float]]) {
        precondition(out.count == statistics.count)
        var cache: [Int64: [Float]] = [:]
        for (r, k) in rowKeys.enumerated() {
            let values: [Float]
            if let v = cache[k] { values = v } else {
                let p = posterior(for: k)
                values = statistics.map { Float(p.value($0, formulas: formulas)) }
                cache[k] = values
            }
            for s in 0..<values.count { out[s][r] = values[s] }
        }
    }

    /// Out-of-fold encoding of the training rows: a row in fold f is encoded with μ, n and N counted
    /// on the rows of every other fold. `fold[r]` is in `0..<folds`. Also fits the encoder on all rows.
    public mutating func fitOutOfFold(keys rowKeys: [Int64], labels: [Float], fold: [Int32], folds: Int,
                                      into out: inout [[Float]]) {
        precondition(rowKeys.count == labels.count && fold.count == labels.count && out.count == statistics.count)
        let c = CategoryLabelCounts(keys: rowKeys, labels: labels, fold: fold, folds: folds)
        fit(counts: c)
        encodeOutOfFold(keys: rowKeys, fold: fold, counts: c, into: &out)
    }

    /// Out-of-fold encoding of some training rows from the counts of all of them (`counts` may
    /// hold every rank's rows while `rowKeys` are this rank's). The encoder must be fitted on
    /// the same counts.
    public func encodeOutOfFold(keys rowKeys: [Int64], fold: [Int32], counts all: CategoryLabelCounts,
                                into out: inout [[Float]]) {
        precondition(fold.count == rowKeys.count && out.count == statistics.count && all.keys == keys)
        let folds = all.folds
        let foldMeans = (0..<folds).map { f -> Double in
            let totalRows = all.rows, totalPositives = priorMean * totalRows
            let rest = totalRows - all.foldRows[f]
            return rest > 0 ? (totalPositives - all.foldLabelSums[f]) / rest : priorMean
        }
        // Encoded values depend only on (category, fold): compute each pair once.
        let width = statistics.count
        var cache = [Float](repeating: .nan, count: folds * keys.count * width)
        for r in 0..<rowKeys.count {
            let f = Int(fold[r]), i = index[rowKeys[r]]!
            let slot = i * folds + f, base = slot * width
            if cache[base].isNaN {
                let p = posterior(positives: positives[i] - all.foldPositives[slot],
                                  count: counts[i] - all.foldCounts[slot], priorMean: foldMeans[f])
                for s in 0..<width { cache[base + s] = Float(p.value(statistics[s], formulas: formulas)) }
            }
            for s in 0..<width { out[s][r] = cache[base + s] }
        }
    }
}
