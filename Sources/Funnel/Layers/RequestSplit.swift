/// The embedding concatenation of a batch whose rows share requests, held as two blocks: each
/// request's part once (R, m rows) and each impression's part (U, n rows). Row k of the
/// concatenation is x_k = [r_{q(k)} ; u_k], the two parts' columns interleaved by field as
/// `columns` records.
///
/// A linear layer reading it (the first layer of a tower, a shared bottom, an expert or a gate)
/// splits its weight by the same columns, W·x_k = W_r·r_{q(k)} + W_u·u_k, and computes
///
///     P = R·W_rᵀ + b           once per request  (m × out)
///     Y_k = P_{q(k)} + W_u·u_k  per impression   (n × out)
///
/// Backward, from the rows' output gradient dY:
///
///     dP_j = Σ_{k: q(k) = j} dY_k     dW_r = dPᵀ·R     dR = dP·W_r
///     dW_u = dYᵀ·U                     dU = dY·W_u      db = Σ_k dY_k
///
/// — the gradient of the unsplit layer, the request rows summed before the product.
public struct RequestSplit {
    /// Impressions (n) and distinct requests (m).
    public let rows: Int
    public let requestCount: Int
    /// U `[n × columns.itemWidth]` and R `[m × columns.requestWidth]`.
    public let items: UnsafePointer<Float>
    public let requests: UnsafePointer<Float>
    /// q: each row's request slot.
    public let requestOf: UnsafePointer<Int32>
    /// Where the layers reading the split write (or add) dU and dR.
    public let dItems: UnsafeMutablePointer<Float>
    public let dRequests: UnsafeMutablePointer<Float>
    public let columns: SplitColumns
    /// This worker's buffers for the packed weights and the request products.
    let scratch: SplitScratch
}

/// Which columns of the concatenation (width `width`) are the request's and which the
/// impression's, as runs of adjacent columns.
public struct SplitColumns: Sendable, Equatable {
    public let width: Int
    public let requestRuns: [Range<Int>]
    public let itemRuns: [Range<Int>]
    public var requestWidth: Int { requestRuns.reduce(0) { $0 + $1.count } }
    public var itemWidth: Int { itemRuns.reduce(0) { $0 + $1.count } }

    /// `isRequest[c]` for every column c.
    public init(isRequest: [Bool]) {
        width = isRequest.count
        func runs(_ wanted: Bool) -> [Range<Int>] {
            var out: [Range<Int>] = [], c = 0
            while c < isRequest.count {
                guard isRequest[c] == wanted else { c += 1; continue }
                let start = c
                while c < isRequest.count && isRequest[c] == wanted { c += 1 }
                out.append(start..<c)
            }
            return out
        }
        requestRuns = runs(true)
        itemRuns = runs(false)
    }

    /// Copies the runs' columns of `rows` full-width rows into compact rows.
    static func pack(_ runs: [Range<Int>], rows: Int, from full: UnsafePointer<Float>, width: Int, into out: UnsafeMutablePointer<Float>) {
        let packed = runs.reduce(0) { $0 + $1.count }
        for r in 0..<rows {
            var at = out + r * packed
            for run in runs {
                at.update(from: full + r * width + run.lowerBound, count: run.count)
                at += run.count
            }
        }
    }

    /// Writes (or adds) compact rows back into the runs' columns of full-width rows.
    static func unpack(_ runs: [Range<Int>], rows: Int, from packed: UnsafePointer<Float>, into full: UnsafeMutablePointer<Float>,
                       width: Int, accumulate: Bool) {
        let w = runs.reduce(0) { $0 + $1.count }
        for r in 0..<rows {
            var at = packed + r * w
            for run in runs {
                let dst = full + r * width + run.lowerBound
                if accumulate { for c in 0..<run.count { dst[c] += at[c] } } else { dst.update(from: at, count: run.count) }
                at += run.count
            }
        }
    }
}

/// One worker's buffers for split layers, sized for the widest layer: a packed weight block and
/// its gradient, the request products and their gradients. Layers run one at a time on a worker,
/// so they share it.
final class SplitScratch {
    let weights: FloatBuffer, weightGradients: FloatBuffer
    let products: FloatBuffer, productGradients: FloatBuffer

    init(maxOut: Int, width: Int, maxRows: Int) {
        weights = FloatBuffer(count: max(1, maxOut * width))
        weightGradients = FloatBuffer(count: max(1, maxOut * width))
        products = FloatBuffer(count: max(1, maxOut * maxRows))
        productGradients = FloatBuffer(count: max(1, maxOut * maxRows))
    }
}

extension DenseLayer {
    /// A part's columns of W `[out × in]` as a matrix with a leading dimension: in place when the
    /// part is one run of columns (no copy), else packed into `scratch`.
    private func weights(_ runs: [Range<Int>], packing scratch: UnsafeMutablePointer<Float>) -> (UnsafePointer<Float>, ld: Int) {
        if runs.count == 1 { return (UnsafePointer(weight.value.base + runs[0].lowerBound), inFeatures) }
        SplitColumns.pack(runs, rows: outFeatures, from: weight.value.base, width: inFeatures, into: scratch)
        return (UnsafePointer(scratch), runs.reduce(0) { $0 + $1.count })
    }

    /// dW's part columns = dyᵀ·a (`k` rows), set or added: straight into dW when the part is one
    /// run, else through `scratch`.
    private func weightGradient(_ runs: [Range<Int>], dy: UnsafePointer<Float>, a: UnsafePointer<Float>, k: Int, worker: Int,
                                accumulate: Bool, scratch: UnsafeMutablePointer<Float>) {
        let width = runs.reduce(0) { $0 + $1.count }, dW = weight.gradients[worker].dense.base
        let direct = runs.count == 1
        BLAS.gemm(transA: true, transB: false, m: outFeatures, n: width, k: k, alpha: 1, a: dy, lda: outFeatures, b: a, ldb: width,
                  beta: direct && accumulate ? 1 : 0, c: direct ? dW + runs[0].lowerBound : scratch, ldc: direct ? inFeatures : width)
        if !direct { SplitColumns.unpack(runs, rows: outFeatures, from: scratch, into: dW, width: inFeatures, accumulate: accumulate) }
    }

    /// y[n × out] = the layer over the split's rows (see `RequestSplit`), then ReLU when `relu`.
    func forward(_ x: RequestSplit, into y: UnsafeMutablePointer<Float>, relu: Bool) {
        let out = outFeatures, c = x.columns, s = x.scratch
        let p = s.products.base
        // P = R·W_rᵀ + b, once per request.
        let wr = weights(c.requestRuns, packing: s.weights.base)
        BLAS.gemm(transA: false, transB: true, m: x.requestCount, n: out, k: c.requestWidth, alpha: 1, a: x.requests, lda: c.requestWidth,
                  b: wr.0, ldb: wr.ld, beta: 0, c: p, ldc: out)
        let b = bias.value.base
        for j in 0..<x.requestCount { for o in 0..<out { p[j * out + o] += b[o] } }
        // Y_k = P_q(k) + W_u·u_k.
        for k in 0..<x.rows { (y + k * out).update(from: p + Int(x.requestOf[k]) * out, count: out) }
        if c.itemWidth > 0 {
            let wu = weights(c.itemRuns, packing: s.weights.base)
            BLAS.gemm(transA: false, transB: true, m: x.rows, n: out, k: c.itemWidth, alpha: 1, a: x.items, lda: c.itemWidth,
                      b: wu.0, ldb: wu.ld, beta: 1, c: y, ldc: out)
        }
        if relu { ReLU.forward(y, count: x.rows * out) }
    }

    /// Sets (or adds) this worker's dW and db from `dy [n × out]` and writes (or adds) dU and dR
    /// into the split's gradient blocks.
    func backward(_ x: RequestSplit, dy: UnsafePointer<Float>, accumulateInputGradient: Bool, worker: Int,
                  accumulateParameterGradients: Bool = false) {
        let out = outFeatures, c = x.columns, s = x.scratch, n = x.rows, m = x.requestCount
        let dp = s.productGradients.base
        // dP: the rows' gradients summed per request, in row order.
        dp.update(repeating: 0, count: m * out)
        for k in 0..<n {
            let dst = dp + Int(x.requestOf[k]) * out, src = dy + k * out
            for o in 0..<out { dst[o] += src[o] }
        }
        let beta: Float = accumulateInputGradient ? 1 : 0
        // The impression part: dW_u = dYᵀ·U, dU = dY·W_u.
        if c.itemWidth > 0 {
            weightGradient(c.itemRuns, dy: dy, a: x.items, k: n, worker: worker, accumulate: accumulateParameterGradients,
                           scratch: s.weightGradients.base)
            let wu = weights(c.itemRuns, packing: s.weights.base)
            BLAS.gemm(transA: false, transB: false, m: n, n: c.itemWidth, k: out, alpha: 1, a: dy, lda: out, b: wu.0, ldb: wu.ld,
                      beta: beta, c: x.dItems, ldc: c.itemWidth)
        }
        // The request part: dW_r = dPᵀ·R, dR = dP·W_r.
        weightGradient(c.requestRuns, dy: dp, a: x.requests, k: m, worker: worker, accumulate: accumulateParameterGradients,
                       scratch: s.weightGradients.base)
        let wr = weights(c.requestRuns, packing: s.weights.base)
        BLAS.gemm(transA: false, transB: false, m: m, n: c.requestWidth, k: out, alpha: 1, a: dp, lda: out, b: wr.0, ldb: wr.ld,
                  beta: beta, c: x.dRequests, ldc: c.requestWidth)
        let db = bias.gradients[worker].dense.base
        if !accumulateParameterGradients { db.update(repeating: 0, count: out) }
        for j in 0..<m { for o in 0..<out { db[o] += dp[j * out + o] } }
    }
}

/// What a layer stack reads: rows of the concatenation, or a batch's request split.
public enum LayerInput {
    case rows(UnsafePointer<Float>)
    case split(RequestSplit)
}

extension DenseLayer {
    /// The forward of either input.
    func forward(_ input: LayerInput, batch: Int, into y: UnsafeMutablePointer<Float>, relu: Bool = false) {
        switch input {
        case .rows(let x): forward(x, batch: batch, into: y, relu: relu)
        case .split(let x): forward(x, into: y, relu: relu)
        }
    }

    /// The backward of either input; a split takes its input gradient in its own blocks (`dx` unused).
    func backward(_ input: LayerInput, dy: UnsafePointer<Float>, batch: Int, dx: UnsafeMutablePointer<Float>?,
                  accumulateInputGradient: Bool, worker: Int) {
        switch input {
        case .rows(let x):
            backward(x, dy: dy, batch: batch, dx: dx, accumulateInputGradient: accumulateInputGradient, worker: worker)
        case .split(let x):
            backward(x, dy: dy, accumulateInputGradient: accumulateInputGradient, worker: worker)
        }
    }
}
