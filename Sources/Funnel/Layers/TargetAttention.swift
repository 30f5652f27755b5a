import Foundation

/// DIN's target attention (Zhou et al., KDD 2018, "Deep Interest Network for Click-Through Rate
/// Prediction", §4.3): a behaviour list pooled with weights that depend on the candidate. For bag
/// j with query q_j (the candidate field's embedding) and values i ∈ j with embeddings e_i and
/// value weights w_i (the list's counts; 1 when ignored):
///
///     z_i = [e_i, q_j, e_i − q_j, e_i ⊙ q_j]            (4·d)
///     s_i = w₂·ReLU(W₁·z_i + b₁) + b₂                   (the activation unit, one hidden layer)
///     a_i = s_i  (unnormalised, as the paper)   or   a_i = exp(s_i) / Σ_{k∈j} exp(s_k)  (softmax)
///     p_j = Σ_{i∈j} w_i·a_i·e_i
///
/// An empty bag pools to zeros. Backward, with g_j = ∂L/∂p_j:
///
///     ∂L/∂e_i  = w_i·a_i·g_j + (∂L/∂z_i)[e] + (∂L/∂z_i)[diff] + q_j ⊙ (∂L/∂z_i)[prod]
///     ∂L/∂a_i  = w_i·⟨e_i, g_j⟩;   ∂L/∂s_i = ∂L/∂a_i (unnormalised) or a_i(∂L/∂a_i − Σ_k a_k ∂L/∂a_k)
///     ∂L/∂q_j  = Σ_{i∈j} (∂L/∂z_i)[q] − (∂L/∂z_i)[diff] + e_i ⊙ (∂L/∂z_i)[prod]
///
/// with ∂L/∂z_i from the activation unit's backward on ∂L/∂s_i. The unit works on gathered
/// matrices — every value of the batch in one GEMM — and knows nothing of tables: the embedding
/// layer gathers e_i and q_j and scatters their gradients.
public final class TargetAttention {
    public let dim: Int
    public let normalize: Bool
    public let hidden: DenseLayer
    public let score: DenseLayer

    /// One worker's buffers for `capacity` values: z, the hidden activations, scores, attention
    /// weights and the backward scratch. A batch with more values (prediction, whose batches are
    /// not planned by training's `maxBagValues`) grows its own worker's — each worker owns one
    /// object, so growing never touches what another thread reads.
    private final class Scratch {
        let dim: Int, units: Int
        var z, h, s, a, dz, dh, ds: FloatBuffer
        private(set) var capacity: Int
        init(_ n: Int, dim: Int, units: Int) {
            (self.dim, self.units, capacity) = (dim, units, n)
            (z, h, s, a, dz, dh, ds) = Scratch.buffers(n, dim: dim, units: units)
        }
        /// Room for `n` values (contents are not kept: every call writes before it reads).
        func reserve(_ n: Int) {
            guard n > capacity else { return }
            (z, h, s, a, dz, dh, ds) = Scratch.buffers(n, dim: dim, units: units)
            capacity = n
        }
        private static func buffers(_ n: Int, dim d: Int, units: Int)
            -> (FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer) {
            (FloatBuffer(count: n * 4 * d), FloatBuffer(count: n * units), FloatBuffer(count: n), FloatBuffer(count: n),
             FloatBuffer(count: n * 4 * d), FloatBuffer(count: n * units), FloatBuffer(count: n))
        }
    }
    private let scratch: [Scratch]

    public init(name: String, dim d: Int, hiddenUnits: Int, normalize: Bool, maxValues: Int, workers: Int, rng: inout RandomSource) {
        dim = d
        self.normalize = normalize
        hidden = DenseLayer(name: name + ".hidden", inFeatures: 4 * d, outFeatures: hiddenUnits, workers: workers, rng: &rng)
        score = DenseLayer(name: name + ".score", inFeatures: hiddenUnits, outFeatures: 1, workers: workers, rng: &rng)
        scratch = (0..<workers).map { _ in Scratch(max(1, maxValues), dim: d, units: hiddenUnits) }
    }

    public var parameters: [Parameter] { hidden.parameters + score.parameters }

    /// The bags' CSR: bag j holds values offsets[j]..<offsets[j+1] of `values` ([V × d], row i the
    /// embedding of value i), `queries` is [bags × d], `weights` [V] (nil: all 1). Writes
    /// p_j at `out + j·outStride`.
    public struct Bags {
        public var count: Int
        public var offsets: UnsafePointer<Int32>
        public var values: UnsafePointer<Float>
        public var queries: UnsafePointer<Float>
        public var weights: UnsafePointer<Float>?
        public init(count: Int, offsets: UnsafePointer<Int32>, values: UnsafePointer<Float>, queries: UnsafePointer<Float>,
                    weights: UnsafePointer<Float>?) {
            (self.count, self.offsets, self.values, self.queries, self.weights) = (count, offsets, values, queries, weights)
        }
        var valueCount: Int { Int(offsets[count]) }
    }

    public func forward(_ bags: Bags, out: UnsafeMutablePointer<Float>, outStride: Int, worker: Int) {
        let n = bags.valueCount, d = dim, b = scratch[worker]
        b.reserve(n)
        let zw = b.z.base, sw = b.s.base, aw = b.a.base
        for j in 0..<bags.count {
            let q = bags.queries + j * d
            for i in Int(bags.offsets[j])..<Int(bags.offsets[j + 1]) {
                let e = bags.values + i * d, row = zw + i * 4 * d
                for k in 0..<d { row[k] = e[k]; row[d + k] = q[k]; row[2 * d + k] = e[k] - q[k]; row[3 * d + k] = e[k] * q[k] }
            }
        }
        if n > 0 {
            hidden.forward(zw, batch: n, into: b.h.base, relu: true)
            score.forward(b.h.base, batch: n, into: sw)
        }
        for j in 0..<bags.count {
            let start = Int(bags.offsets[j]), end = Int(bags.offsets[j + 1]), p = out + j * outStride
            p.update(repeating: 0, count: d)
            attentionWeights(sw, aw, start, end)
            for i in start..<end {
                let c = (bags.weights?[i] ?? 1) * aw[i], e = bags.values + i * d
                for k in 0..<d { p[k] += c * e[k] }
            }
        }
    }

    /// a over one bag: the scores themselves, or their softmax (max subtracted first).
    private func attentionWeights(_ s: UnsafeMutablePointer<Float>, _ a: UnsafeMutablePointer<Float>, _ start: Int, _ end: Int) {
        guard start < end else { return }
        guard normalize else { for i in start..<end { a[i] = s[i] }; return }
        var top = -Float.infinity
        for i in start..<end { top = max(top, s[i]) }
        var total: Float = 0
        for i in start..<end { a[i] = exp(s[i] - top); total += a[i] }
        for i in start..<end { a[i] /= total }
    }

    /// Sets the unit's parameter gradients (this worker's) and writes ∂L/∂e_i into `dValues`
    /// ([V × d]) and ∂L/∂q_j into `dQueries` ([bags × d]) from `dOut` (g_j at `dOut + j·outStride`).
    public func backward(_ bags: Bags, dOut: UnsafePointer<Float>, outStride: Int, worker: Int,
                         dValues: UnsafeMutablePointer<Float>, dQueries: UnsafeMutablePointer<Float>) {
        let n = bags.valueCount, d = dim, b = scratch[worker]
        let aw = b.a.base, dsw = b.ds.base
        dQueries.update(repeating: 0, count: bags.count * d)
        for j in 0..<bags.count {
            let start = Int(bags.offsets[j]), end = Int(bags.offsets[j + 1]), g = dOut + j * outStride
            var mean: Float = 0  // Σ_k a_k·∂L/∂a_k, for the softmax
            for i in start..<end {
                let w = bags.weights?[i] ?? 1, e = bags.values + i * d, de = dValues + i * d
                var dot: Float = 0
                for k in 0..<d { dot += e[k] * g[k]; de[k] = w * aw[i] * g[k] }
                dsw[i] = w * dot
                mean += aw[i] * dsw[i]
            }
            if normalize { for i in start..<end { dsw[i] = aw[i] * (dsw[i] - mean) } }
        }
        guard n > 0 else { hidden.zeroGradients(worker: worker); score.zeroGradients(worker: worker); return }
        score.backward(b.h.base, dy: dsw, batch: n, dx: b.dh.base, worker: worker)
        let hw = b.h.base, dhw = b.dh.base
        for i in 0..<(n * hidden.outFeatures) where hw[i] <= 0 { dhw[i] = 0 }  // ReLU
        hidden.backward(b.z.base, dy: dhw, batch: n, dx: b.dz.base, worker: worker)
        scatter(bags, dValues: dValues, dQueries: dQueries, worker: worker)
    }

    /// ∂L/∂z_i's four parts into ∂L/∂e_i and ∂L/∂q_j.
    private func scatter(_ bags: Bags, dValues: UnsafeMutablePointer<Float>, dQueries: UnsafeMutablePointer<Float>, worker: Int) {
        let d = dim, dzw = scratch[worker].dz.base
        for j in 0..<bags.count {
            let q = bags.queries + j * d, dq = dQueries + j * d
            for i in Int(bags.offsets[j])..<Int(bags.offsets[j + 1]) {
                let e = bags.values + i * d, de = dValues + i * d, g = dzw + i * 4 * d
                for k in 0..<d {
                    de[k] += g[k] + g[2 * d + k] + q[k] * g[3 * d + k]
                    dq[k] += g[d + k] - g[2 * d + k] + e[k] * g[3 * d + k]
                }
            }
        }
    }
}
