import Foundation

/// DCN-v2's cross network (Wang et al., WWW 2021, "DCN V2: Improved Deep & Cross Network and
/// Practical Lessons for Web-scale Learning to Rank Systems", Eq. 1): K layers over the input
/// x₀ (the embedding concatenation), each an explicit feature cross with a residual,
///
///     x_{l+1} = x₀ ⊙ (W_l·x_l + b_l) + x_l,
///
/// full rank (W_l is d × d) or low rank (W_l = U_l·V_lᵀ with U_l, V_l d × r, the paper's §3.2
/// "low-rank DCN": x₀ ⊙ (U_l(V_lᵀ·x_l) + b_l) + x_l). Backward, with g = ∂L/∂x_{l+1} and
/// u_l = W_l·x_l + b_l:
///
///     ∂L/∂u_l = g ⊙ x₀,   ∂L/∂x₀ += g ⊙ u_l,   ∂L/∂x_l = g + (g ⊙ x₀)·W_l,
///     ∂L/∂W_l = (g ⊙ x₀)ᵀ·x_l,   ∂L/∂b_l = Σ_rows g ⊙ x₀
///
/// (low rank: ∂L/∂U_l = (g ⊙ x₀)ᵀ·v_l with v_l = x_l·V_l, ∂L/∂v_l = (g ⊙ x₀)·U_l,
/// ∂L/∂V_l = (∂L/∂v_l)ᵀ·x_l, and ∂L/∂x_l adds ∂L/∂v_l·V_lᵀ instead).
public final class CrossNetwork {
    public let width: Int
    public let rank: Int?
    /// Per layer: the full-rank W_l (d → d, with b_l), or the low rank's U_l (r → d, with b_l).
    public let mixes: [DenseLayer]
    /// Low rank only: V_lᵀ stored [r × d] (x_l·V_l = x_l·(V_lᵀ)ᵀ), no bias.
    public let projections: [Parameter]

    // Per worker: x₁…x_K (x₀ is the caller's), u_0…u_{K−1}, v_l (low rank), and backward scratch.
    private let states: [[FloatBuffer]], mixed: [[FloatBuffer]], projected: [[FloatBuffer]]
    private let dState: [FloatBuffer], dNext: [FloatBuffer], dMixed: [FloatBuffer], dProjected: [FloatBuffer]
    private var inputs: [UnsafePointer<Float>?]

    public init(name: String, width d: Int, layers: Int, rank: Int?, maxBatch: Int, workers: Int, rng: inout RandomSource) {
        precondition(layers >= 1 && (rank ?? 1) >= 1)
        width = d
        self.rank = rank
        var mixes: [DenseLayer] = [], projections: [Parameter] = []
        for l in 0..<layers {
            if let r = rank {
                let v = Parameter(name: "\(name).\(l).v", shape: [r, d], workers: workers)
                let bound = 1 / Double(d).squareRoot()
                for i in 0..<v.count { v.value[i] = Float((rng.uniform() * 2 - 1) * bound) }
                projections.append(v)
                mixes.append(DenseLayer(name: "\(name).\(l).u", inFeatures: r, outFeatures: d, workers: workers, rng: &rng))
            } else {
                mixes.append(DenseLayer(name: "\(name).\(l).w", inFeatures: d, outFeatures: d, workers: workers, rng: &rng))
            }
        }
        self.mixes = mixes
        self.projections = projections
        func buffers(_ n: Int) -> [FloatBuffer] { (0..<workers).map { _ in FloatBuffer(count: n) } }
        states = (0..<workers).map { _ in (0..<layers).map { _ in FloatBuffer(count: maxBatch * d) } }
        mixed = (0..<workers).map { _ in (0..<layers).map { _ in FloatBuffer(count: maxBatch * d) } }
        projected = (0..<workers).map { _ in (0..<layers).map { _ in FloatBuffer(count: rank == nil ? 0 : maxBatch * rank!) } }
        dState = buffers(maxBatch * d); dNext = buffers(maxBatch * d); dMixed = buffers(maxBatch * d)
        dProjected = buffers(rank == nil ? 0 : maxBatch * rank!)
        inputs = Array(repeating: nil, count: workers)
    }

    public var layerCount: Int { mixes.count }
    public var parameters: [Parameter] { zip(mixes.indices, mixes).flatMap { l, m in (rank == nil ? [] : [projections[l]]) + m.parameters } }

    /// x_K for the rows of `x0` ([batch × d]); the pointer is this worker's until its next forward.
    public func forward(_ x0: UnsafePointer<Float>, batch: Int, worker: Int) -> UnsafePointer<Float> {
        inputs[worker] = x0
        let d = width, n = batch * d
        var x = x0
        for l in 0..<layerCount {
            let u = mixed[worker][l].base, next = states[worker][l].base
            mix(l, x, batch: batch, worker: worker, into: u)
            for i in 0..<n { next[i] = x0[i] * u[i] + x[i] }
            x = UnsafePointer(next)
        }
        return x
    }

    /// u_l = W_l·x_l + b_l (full rank) or U_l(V_lᵀ·x_l) + b_l (low rank).
    private func mix(_ l: Int, _ x: UnsafePointer<Float>, batch: Int, worker: Int, into u: UnsafeMutablePointer<Float>) {
        guard let r = rank else { return mixes[l].forward(x, batch: batch, into: u) }
        let v = projected[worker][l].base
        BLAS.gemm(transA: false, transB: true, m: batch, n: r, k: width, alpha: 1, a: x, lda: width,
                  b: projections[l].value.base, ldb: width, beta: 0, c: v, ldc: r)
        mixes[l].forward(v, batch: batch, into: u)
    }

    /// This worker's last output x_K.
    public func output(worker: Int) -> UnsafePointer<Float> { UnsafePointer(states[worker][layerCount - 1].base) }

    /// Sets this worker's parameter gradients from `dy` = ∂L/∂x_K and adds ∂L/∂x₀ into `dx0`
    /// (written when `accumulate` is false; `dx0` may be `dy`).
    public func backward(dy: UnsafePointer<Float>, batch: Int, worker: Int, dx0: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let x0 = inputs[worker]!, d = width, n = batch * d
        let g = dState[worker].base, du = dMixed[worker].base, below = dNext[worker].base
        g.update(from: dy, count: n)  // first: `dx0` may be `dy` itself
        if !accumulate { dx0.update(repeating: 0, count: n) }
        for l in stride(from: layerCount - 1, through: 0, by: -1) {
            let u = mixed[worker][l].base
            let x = l == 0 ? x0 : UnsafePointer(states[worker][l - 1].base)
            for i in 0..<n { du[i] = g[i] * x0[i]; dx0[i] += g[i] * u[i] }
            below.update(from: g, count: n)  // the residual: ∂L/∂x_l starts as g
            unmix(l, x, du: du, batch: batch, worker: worker, dx: below)
            if l == 0 { for i in 0..<n { dx0[i] += below[i] } } else { g.update(from: below, count: n) }
        }
    }

    /// The mix's parameter gradients from ∂L/∂u_l, and its input gradient added into `dx`.
    private func unmix(_ l: Int, _ x: UnsafePointer<Float>, du: UnsafePointer<Float>, batch: Int, worker: Int,
                       dx: UnsafeMutablePointer<Float>) {
        guard let r = rank else {
            return mixes[l].backward(x, dy: du, batch: batch, dx: dx, accumulateInputGradient: true, worker: worker)
        }
        let v = projected[worker][l].base, dv = dProjected[worker].base
        mixes[l].backward(v, dy: du, batch: batch, dx: dv, worker: worker)
        BLAS.gemm(transA: true, transB: false, m: r, n: width, k: batch, alpha: 1, a: dv, lda: r, b: x, ldb: width,
                  beta: 0, c: projections[l].gradients[worker].dense.base, ldc: width)
        BLAS.gemm(transA: false, transB: false, m: batch, n: width, k: r, alpha: 1, a: dv, lda: r,
                  b: projections[l].value.base, ldb: width, beta: 1, c: dx, ldc: width)
    }
}
