/// How a multi-valued field's values pool into one vector.
public enum BagPooling: String, Codable, CaseIterable, Sendable {
    /// Σ wᵢ·e(idᵢ): the weighted sum (the default; PyTorch `EmbeddingBag(mode="sum",
    /// per_sample_weights=…)`).
    case sum
    /// Σ wᵢ·e(idᵢ) / Σ wᵢ: the weighted mean (with unit weights, the plain mean).
    case mean
    /// DIN's target attention: Σ wᵢ·aᵢ·e(idᵢ), aᵢ from the candidate's embedding (`TargetAttention`),
    /// for the lists given a query; the others pool by weighted sum.
    case attention
}

/// Pooled embedding lookups of multi-valued ("bag") fields — esmm-sigir2018's Embedding&MLP,
/// where a field with several values (a user's 14-day category, shop, brand and intention
/// lists, each value with a count) is pooled into one vector per field before the towers.
///
/// A batch's bags are CSR, row-major over (row, bag field): bag j = row·bagFields + field holds
/// `ids[offsets[j]..<offsets[j+1]]` with `weights` alongside (no padding). Pooled vector j is
/// written at `out + row·rowStride + firstColumn + field·dim`, beside the single-valued fields.
///
/// Forward:  p_j = Σᵢ wᵢ·E[idᵢ]  (sum)   or   p_j = Σᵢ wᵢ·E[idᵢ] / Σᵢ wᵢ  (mean)
/// Backward: ∂L/∂E[idᵢ] += wᵢ·∂L/∂p_j  (sum)   or   += wᵢ/Σw · ∂L/∂p_j  (mean)
/// An empty bag (or one whose weights sum to 0 under mean pooling) pools to zeros and passes no
/// gradient. With `ignoreValues` every weight is 1. The weights are data, not parameters.
public struct EmbeddingBag: Sendable {
    public let dim: Int
    public var pooling: BagPooling
    public var ignoreValues: Bool

    public init(dim: Int, pooling: BagPooling = .sum, ignoreValues: Bool = false) {
        self.dim = dim
        self.pooling = pooling
        self.ignoreValues = ignoreValues
    }

    /// How bag [start, end) scales its values: weight i is `ignore ? 1 : weights[i]`, divided
    /// by `divisor` (the weight sum under mean pooling, else 1); `empty` bags pool to zeros.
    @inline(__always)
    private func scaling(_ weights: UnsafePointer<Float>?, _ start: Int, _ end: Int) -> (divisor: Float, ignore: Bool, empty: Bool) {
        let ignore = ignoreValues || weights == nil
        guard pooling == .mean else { return (1, ignore, end == start) }
        var total: Float = 0
        if ignore { total = Float(end - start) } else { for i in start..<end { total += weights![i] } }
        return (total == 0 ? 1 : total, ignore, end == start || total == 0)
    }

    /// Pools every bag of a batch of `batch` rows × `bagFields` fields.
    public func forward(table: UnsafePointer<Float>, batch: Int, bagFields: Int, offsets: UnsafePointer<Int32>,
                        ids: UnsafePointer<Int32>, weights: UnsafePointer<Float>?,
                        out: UnsafeMutablePointer<Float>, rowStride: Int, firstColumn: Int) {
        for b in 0..<batch {
            for f in 0..<bagFields {
                let j = b * bagFields + f
                let dst = out + b * rowStride + firstColumn + f * dim
                dst.update(repeating: 0, count: dim)
                let start = Int(offsets[j]), end = Int(offsets[j + 1])
                let (divisor, ignore, empty) = scaling(weights, start, end)
                guard !empty else { continue }
                for i in start..<end {
                    let w = (ignore ? 1 : weights![i]) / divisor, src = table + Int(ids[i]) * dim
                    for d in 0..<dim { dst[d] += w * src[d] }
                }
            }
        }
    }

    /// Adds the bags' share of `dOut` into `gradient`'s sparse rows: a row touched for the
    /// first time takes a new slot (in first-touch order), later touches accumulate. `slots`
    /// maps table row → slot (−1: untouched) and is shared with the single-valued fields'
    /// backward of the same call; the caller resets it.
    public func backward(dOut: UnsafePointer<Float>, batch: Int, bagFields: Int, offsets: UnsafePointer<Int32>,
                         ids: UnsafePointer<Int32>, weights: UnsafePointer<Float>?, rowStride: Int, firstColumn: Int,
                         gradient: ParameterGradient, slots: UnsafeMutableBufferPointer<Int32>) {
        for b in 0..<batch {
            for f in 0..<bagFields {
                let j = b * bagFields + f
                let src = dOut + b * rowStride + firstColumn + f * dim
                let start = Int(offsets[j]), end = Int(offsets[j + 1])
                let (divisor, ignore, empty) = scaling(weights, start, end)
                guard !empty else { continue }
                for i in start..<end {
                    let w = (ignore ? 1 : weights![i]) / divisor
                    let dst = gradient.slot(ofRow: Int(ids[i]), width: dim, slots: slots)
                    for d in 0..<dim { dst[d] += w * src[d] }
                }
            }
        }
    }
}
