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
}
