import Foundation

/// Exact, global metrics over a whole sample space (never averaged over batches).
public enum Metrics {
    /// ROC-AUC by the weighted Mann–Whitney statistic: the probability that a random positive
    /// scores above a random negative, counting ties as one half (mid-rank). Sample weights
    /// scale each row's mass. Returns nil when either class has zero total weight: AUC is
    /// undefined there, and a made-up 0.5 would hide it.
    public static func auc(scores: [Float], labels: [Float], weights: [Float]? = nil) -> Double? {
        let n = scores.count
        precondition(labels.count == n && (weights?.count ?? n) == n)
        var order = Array(0..<n)
        order.sort { scores[$0] < scores[$1] }
        var negBelow = 0.0, sum = 0.0, pos = 0.0, neg = 0.0
        var i = 0
        while i < n {
            var j = i
            var tiePos = 0.0, tieNeg = 0.0
            let s = scores[order[i]]
            while j < n && scores[order[j]] == s {
                let r = order[j]
                let w = Double(weights?[r] ?? 1)
                if labels[r] > 0.5 { tiePos += w } else { tieNeg += w }
                j += 1
            }
            sum += tiePos * (negBelow + 0.5 * tieNeg)
            negBelow += tieNeg
            pos += tiePos
            neg += tieNeg
            i = j
        }
        guard pos > 0, neg > 0 else { return nil }
        return sum / (pos * neg)
    }

    /// Weighted mean binary cross-entropy, −Σ w[y log p + (1−y) log(1−p)] / Σ w, with p clamped
    /// to [1e-7, 1 − 1e-7]. nil for an empty space.
    public static func logLoss(predictions: [Float], labels: [Float], weights: [Float]? = nil) -> Double? {
        precondition(labels.count == predictions.count)
        var total = 0.0, mass = 0.0
        for i in 0..<predictions.count {
            let w = Double(weights?[i] ?? 1)
            let p = min(max(Double(predictions[i]), 1e-7), 1 - 1e-7)
            let y = Double(labels[i])
            total -= w * (y * log(p) + (1 - y) * log(1 - p))
            mass += w
        }
        return mass > 0 ? total / mass : nil
    }

    /// Area under the precision–recall curve as average precision: Σ over score thresholds
    /// (ties form one threshold) of recall gained × precision there, weighted. nil without positives.
    public static func prAUC(scores: [Float], labels: [Float], weights: [Float]? = nil) -> Double? {
        let n = scores.count
        var order = Array(0..<n)
        order.sort { scores[$0] > scores[$1] }
        var totalPos = 0.0
        for i in 0..<n where labels[i] > 0.5 { totalPos += Double(weights?[i] ?? 1) }
        guard totalPos > 0 else { return nil }
        var tp = 0.0, fp = 0.0, ap = 0.0
        var i = 0
        while i < n {
            var j = i, gainPos = 0.0, gainNeg = 0.0
            let s = scores[order[i]]
            while j < n && scores[order[j]] == s {
                let w = Double(weights?[order[j]] ?? 1)
                if labels[order[j]] > 0.5 { gainPos += w } else { gainNeg += w }
                j += 1
            }
            tp += gainPos; fp += gainNeg
            if gainPos > 0 { ap += gainPos / totalPos * tp / (tp + fp) }
            i = j
        }
        return ap
    }

    /// Mean prediction over mean label (weighted): 1 is calibrated on average, above 1 over-predicts.
    public static func calibrationRatio(predictions: [Float], labels: [Float], weights: [Float]? = nil) -> Double? {
        var p = 0.0, y = 0.0
        for i in 0..<predictions.count {
            let w = Double(weights?[i] ?? 1)
            p += w * Double(predictions[i]); y += w * Double(labels[i])
        }
        return y > 0 ? p / y : nil
    }

    /// One bin of a reliability diagram.
    public struct ReliabilityBin: Codable, Sendable {
        public var meanPrediction: Double
        public var observedRate: Double
        public var weight: Double
        enum CodingKeys: String, CodingKey { case meanPrediction = "mean_prediction", observedRate = "observed_rate", weight }
    }

    /// Reliability bins of equal weight by predicted value. Equal-mass bins, not equal-width:
    /// funnel probabilities are small (CTCVR ≈ 0.1%), so equal-width bins would put almost
    /// every row in the first one.
    public static func reliability(predictions: [Float], labels: [Float], weights: [Float]? = nil, bins: Int = 10) -> [ReliabilityBin] {
        let n = predictions.count
        guard n > 0 else { return [] }
        var order = Array(0..<n)
        order.sort { predictions[$0] < predictions[$1] }
        var total = 0.0
        for i in 0..<n { total += Double(weights?[i] ?? 1) }
        var out: [ReliabilityBin] = []
        var acc = 0.0, wp = 0.0, wy = 0.0, w = 0.0
        var next = total / Double(bins)
        for (k, r) in order.enumerated() {
            let wi = Double(weights?[r] ?? 1)
            acc += wi; w += wi; wp += wi * Double(predictions[r]); wy += wi * Double(labels[r])
            if acc >= next - 1e-9 || k == n - 1 {
                if w > 0 { out.append(ReliabilityBin(meanPrediction: wp / w, observedRate: wy / w, weight: w)) }
                wp = 0; wy = 0; w = 0
                next += total / Double(bins)
            }
        }
        return out
    }

    /// Expected calibration error over equal-mass bins: Σ_b (W_b / W)·|mean p_b − rate_b|.
    public static func expectedCalibrationError(predictions: [Float], labels: [Float], weights: [Float]? = nil, bins: Int = 10) -> Double? {
        let r = reliability(predictions: predictions, labels: labels, weights: weights, bins: bins)
        let total = r.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return nil }
        return r.reduce(0) { $0 + $1.weight / total * abs($1.meanPrediction - $1.observedRate) }
    }

    /// Walks the score thresholds from the top (tied scores one threshold), calling
    /// `body(fpr, tpr, rows)` after each with the weighted rates so far and the rows it took.
    /// False (nothing called) when either class has no weight.
    private static func forEachThreshold(scores: [Float], labels: [Float], weights: [Float]?,
                                         _ body: (_ fpr: Double, _ tpr: Double, _ rows: Int) -> Void) -> Bool {
        let n = scores.count
        precondition(labels.count == n && (weights?.count ?? n) == n)
        var order = Array(0..<n)
        order.sort { scores[$0] > scores[$1] }
        var pos = 0.0, neg = 0.0
        for i in 0..<n { if labels[i] > 0.5 { pos += Double(weights?[i] ?? 1) } else { neg += Double(weights?[i] ?? 1) } }
        guard pos > 0, neg > 0 else { return false }
        var tp = 0.0, fp = 0.0, i = 0
        while i < n {
            var j = i
            let s = scores[order[i]]
            while j < n && scores[order[j]] == s {
                let w = Double(weights?[order[j]] ?? 1)
                if labels[order[j]] > 0.5 { tp += w } else { fp += w }
                j += 1
            }
            body(fp / neg, tp / pos, j - i)
            i = j
        }
        return true
    }

    /// ROC curve points (false-positive rate, true-positive rate), thinned to about `points`.
    public static func rocCurve(scores: [Float], labels: [Float], weights: [Float]? = nil, points: Int = 200) -> [[Double]] {
        var curve: [[Double]] = [[0, 0]]
        let step = max(1, scores.count / points)
        var sinceLast = 0, taken = 0
        let defined = forEachThreshold(scores: scores, labels: labels, weights: weights) { fpr, tpr, rows in
            sinceLast += rows
            taken += rows
            if sinceLast >= step || taken == scores.count { curve.append([fpr, tpr]); sinceLast = 0 }
        }
        return defined ? curve : []
    }

    /// Kolmogorov–Smirnov statistic: the largest gap between the weighted cumulative score
    /// distributions of positives and negatives, max over thresholds |TPR − FPR| (tied scores
    /// form one threshold). nil when either class has no weight.
    public static func ks(scores: [Float], labels: [Float], weights: [Float]? = nil) -> Double? {
        var best = 0.0
        let defined = forEachThreshold(scores: scores, labels: labels, weights: weights) { fpr, tpr, _ in best = max(best, abs(tpr - fpr)) }
        return defined ? best : nil
    }

    /// Group AUC (Zhou et al., KDD 2018, DIN §6.1): the AUC within each group (a user, a
    /// request), averaged weighted by the group's impressions (their weights); groups whose rows
    /// are all one class have no AUC and are left out. nil when no group has both classes.
    public static func gauc(scores: [Float], labels: [Float], groups: [Int64], weights: [Float]? = nil) -> Double? {
        precondition(labels.count == scores.count && groups.count == scores.count)
        var members: [Int64: [Int]] = [:]
        for (i, g) in groups.enumerated() { members[g, default: []].append(i) }
        var total = 0.0, mass = 0.0
        for key in members.keys.sorted() {
            let rows = members[key]!
            let w = weights.map { w in rows.map { w[$0] } }
            guard let a = auc(scores: rows.map { scores[$0] }, labels: rows.map { labels[$0] }, weights: w) else { continue }
            let m = w?.reduce(0.0) { $0 + Double($1) } ?? Double(rows.count)
            total += m * a
            mass += m
        }
        return mass > 0 ? total / mass : nil
    }
}
