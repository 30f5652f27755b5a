/// Fully connected layer y = x·Wᵀ + b, with W stored `[out × in]` as PyTorch's `nn.Linear`
/// does, so saved weights load into PyTorch unchanged.
public final class DenseLayer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter

    public init(name: String, inFeatures: Int, outFeatures: Int, workers: Int = 1, rng: inout RandomSource) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(name: name + ".weight", shape: [outFeatures, inFeatures], workers: workers)
        bias = Parameter(name: name + ".bias", shape: [outFeatures], workers: workers)
        // PyTorch's default nn.Linear initialisation: U(−1/√in, 1/√in) for weight and bias.
        let bound = 1 / Double(inFeatures).squareRoot()
        for i in 0..<weight.count { weight.value[i] = Float((rng.uniform() * 2 - 1) * bound) }
        for i in 0..<bias.count { bias.value[i] = Float((rng.uniform() * 2 - 1) * bound) }
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// y[B × out] = x[B × in]·Wᵀ + b, then ReLU when `relu` (fused into the GEMM on oneDNN).
    public func forward(_ x: UnsafePointer<Float>, batch: Int, into y: UnsafeMutablePointer<Float>, relu: Bool = false) {
        BLAS.linear(m: batch, n: outFeatures, k: inFeatures, x: x, w: weight.value.base, bias: bias.value.base, relu: relu, y: y)
    }

    /// Sets (or, with `accumulateParameterGradients`, adds) this worker's dW = dyᵀ·x and
    /// db = Σ dy, and writes (or, with `accumulateInputGradient`, adds) dx = dy·W.
    public func backward(
        _ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, batch: Int,
        dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool = false, worker: Int = 0,
        accumulateParameterGradients: Bool = false
    ) {
        BLAS.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch,
                  alpha: 1, a: dy, lda: outFeatures, b: x, ldb: inFeatures,
                  beta: accumulateParameterGradients ? 1 : 0, c: weight.gradients[worker].dense.base, ldc: inFeatures)
        let db = bias.gradients[worker].dense.base
        if !accumulateParameterGradients { db.update(repeating: 0, count: outFeatures) }
        for r in 0..<batch {
            let row = dy + r * outFeatures
            for j in 0..<outFeatures { db[j] += row[j] }
        }
        if let dx {
            BLAS.gemm(transA: false, transB: false, m: batch, n: inFeatures, k: outFeatures,
                      alpha: 1, a: dy, lda: outFeatures, b: weight.value.base, ldb: inFeatures,
                      beta: accumulateInputGradient ? 1 : 0, c: dx, ldc: inFeatures)
        }
    }

    /// Zeroes this worker's gradients (a layer that took no part in a step).
    public func zeroGradients(worker: Int = 0) {
        weight.gradients[worker].dense.zero()
        bias.gradients[worker].dense.zero()
    }
}
