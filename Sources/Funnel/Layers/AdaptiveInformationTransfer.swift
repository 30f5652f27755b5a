import Foundation

/// AITM's adaptive information transfer (Xi et al., KDD 2021): the CTR tower's representation
/// q₁ is transferred as p = ReLU(g(q₁)) and combined with the conversion tower's own q₂ by
/// self-attention over the two: z = Σ_u w_u·h₁(u), w = softmax_u(⟨h₂(u), h₃(u)⟩ / √k),
/// u ∈ {p, q₂}. g, h₁, h₂, h₃ are k→k linear layers.
public final class AdaptiveInformationTransfer {
    public let width: Int
    public let transfer: DenseLayer
    public let value: DenseLayer
    public let query: DenseLayer
    public let key: DenseLayer

    // Per worker: p, and for u ∈ {p, q₂}: h1/h2/h3 outputs; attention weights; output z; scratch.
    private let transferred: [FloatBuffer]
    private let h1: [[FloatBuffer]], h2: [[FloatBuffer]], h3: [[FloatBuffer]]
    private let weights: [FloatBuffer]  // B×2
    private let outputs: [FloatBuffer]
    private let dH1: [FloatBuffer], dH2: [FloatBuffer], dH3: [FloatBuffer], dP: [FloatBuffer]
    private var inputs: [(UnsafePointer<Float>, UnsafePointer<Float>)?]

    public init(name: String, width k: Int, maxBatch: Int, workers: Int, rng: inout RandomSource) {
        width = k
        transfer = DenseLayer(name: name + ".transfer", inFeatures: k, outFeatures: k, workers: workers, rng: &rng)
        value = DenseLayer(name: name + ".h1", inFeatures: k, outFeatures: k, workers: workers, rng: &rng)
        query = DenseLayer(name: name + ".h2", inFeatures: k, outFeatures: k, workers: workers, rng: &rng)
        key = DenseLayer(name: name + ".h3", inFeatures: k, outFeatures: k, workers: workers, rng: &rng)
        func buffers(_ n: Int) -> [FloatBuffer] { (0..<workers).map { _ in FloatBuffer(count: n) } }
        transferred = buffers(maxBatch * k)
        h1 = (0..<workers).map { _ in [FloatBuffer(count: maxBatch * k), FloatBuffer(count: maxBatch * k)] }
        h2 = (0..<workers).map { _ in [FloatBuffer(count: maxBatch * k), FloatBuffer(count: maxBatch * k)] }
        h3 = (0..<workers).map { _ in [FloatBuffer(count: maxBatch * k), FloatBuffer(count: maxBatch * k)] }
        weights = buffers(maxBatch * 2)
        outputs = buffers(maxBatch * k)
        dH1 = buffers(maxBatch * k); dH2 = buffers(maxBatch * k); dH3 = buffers(maxBatch * k); dP = buffers(maxBatch * k)
        inputs = Array(repeating: nil, count: workers)
    }

    public var parameters: [Parameter] { transfer.parameters + value.parameters + query.parameters + key.parameters }

    /// z from the previous task's representation `previous` (q₁) and this task's `current` (q₂).
    public func forward(previous: UnsafePointer<Float>, current: UnsafePointer<Float>, batch: Int, worker: Int) -> UnsafePointer<Float> {
        let k = width
        inputs[worker] = (previous, current)
        let p = transferred[worker].base
        transfer.forward(previous, batch: batch, into: p, relu: true)
        let sources = [UnsafePointer(p), current]
        for u in 0..<2 {
            value.forward(sources[u], batch: batch, into: h1[worker][u].base)
            query.forward(sources[u], batch: batch, into: h2[worker][u].base)
            key.forward(sources[u], batch: batch, into: h3[worker][u].base)
        }
        let w = weights[worker].base, z = outputs[worker].base
        let scale = 1 / Float(k).squareRoot()
        for b in 0..<batch {
            for u in 0..<2 {
                var dot: Float = 0
                let a = h2[worker][u].base + b * k, c = h3[worker][u].base + b * k
                for d in 0..<k { dot += a[d] * c[d] }
                w[b * 2 + u] = dot * scale
            }
            Softmax.forward(w + b * 2, count: 2)
            let v0 = h1[worker][0].base + b * k, v1 = h1[worker][1].base + b * k, o = z + b * k
            for d in 0..<k { o[d] = w[b * 2] * v0[d] + w[b * 2 + 1] * v1[d] }
        }
        return UnsafePointer(z)
    }

    /// z of the last forward.
    public func output(worker: Int) -> UnsafePointer<Float> { UnsafePointer(outputs[worker].base) }

    /// Attention weight on the transferred CTR information (`[batch]` view, stride 2).
    public func transferWeights(worker: Int) -> UnsafePointer<Float> { UnsafePointer(weights[worker].base) }

    /// Back-propagates dz; adds into `dPrevious` (the CTR tower's representation gradient) and
    /// writes `dCurrent`. Parameter gradients of the four layers are accumulated over u.
    public func backward(dz: UnsafePointer<Float>, batch: Int, dPrevious: UnsafeMutablePointer<Float>,
                         dCurrent: UnsafeMutablePointer<Float>, worker: Int) {
        let k = width
        let (previous, current) = inputs[worker]!
        let p = transferred[worker].base
        let sources = [UnsafePointer(p), current]
        let dSource = [dP[worker].base, dCurrent]
        let w = weights[worker].base
        let scale = 1 / Float(k).squareRoot()
        // Each layer's parameter gradient sums over u: the first source writes it, the second adds.
        for u in 0..<2 {
            let d1 = dH1[worker].base, d2 = dH2[worker].base, d3 = dH3[worker].base
            for b in 0..<batch {
                let row = dz + b * k
                // dz/dh1(u) = w_u; dL/dw_u = ⟨dz, h1(u)⟩; softmax over the two scores.
                var g0: Float = 0, g1: Float = 0
                let v0 = h1[worker][0].base + b * k, v1 = h1[worker][1].base + b * k
                for d in 0..<k { g0 += row[d] * v0[d]; g1 += row[d] * v1[d] }
                let w0 = w[b * 2], w1 = w[b * 2 + 1]
                let dot = g0 * w0 + g1 * w1
                let dScore = (u == 0 ? w0 * (g0 - dot) : w1 * (g1 - dot)) * scale
                let wu = u == 0 ? w0 : w1
                let a = h2[worker][u].base + b * k, c = h3[worker][u].base + b * k
                for d in 0..<k {
                    d1[b * k + d] = wu * row[d]
                    d2[b * k + d] = dScore * c[d]
                    d3[b * k + d] = dScore * a[d]
                }
            }
            let dst = dSource[u]
            let add = u == 1
            value.backward(sources[u], dy: d1, batch: batch, dx: dst, accumulateInputGradient: false, worker: worker,
                           accumulateParameterGradients: add)
            query.backward(sources[u], dy: d2, batch: batch, dx: dst, accumulateInputGradient: true, worker: worker,
                           accumulateParameterGradients: add)
            key.backward(sources[u], dy: d3, batch: batch, dx: dst, accumulateInputGradient: true, worker: worker,
                         accumulateParameterGradients: add)
        }
        // Through p = ReLU(g(q₁)).
        let dp = dP[worker].base
        ReLU.backward(output: p, gradient: dp, count: batch * k)
        transfer.backward(previous, dy: dp, batch: batch, dx: dPrevious, accumulateInputGradient: true, worker: worker)
    }
}
