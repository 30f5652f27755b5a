import CDNNL
import COpenBLAS
import Foundation

/// The library every dense layer's GEMM runs on (`--gemm`, or `FUNNEL_GEMM` in the environment).
public enum GEMMEngine: String, CaseIterable, Codable, Sendable {
    /// OpenBLAS's `cblas_sgemm` (on this machine forced onto its Haswell AVX2 kernels by
    /// `OPENBLAS_CORETYPE`).
    case openblas
    /// oneDNN's `dnnl_sgemm`, which picks its AVX-512 kernels by itself; matrix-vector shapes
    /// (one output column or row, a tower's logit layer) stay on OpenBLAS, which is faster there.
    case onednn

    /// What the environment asks for (`FUNNEL_GEMM=openblas|onednn`), else oneDNN, the faster
    /// FP32 engine here (docs/performance.md: 1.4–1.6× OpenBLAS in training, 1.3× in predict).
    public static var fromEnvironment: GEMMEngine {
        ProcessInfo.processInfo.environment["FUNNEL_GEMM"].flatMap(GEMMEngine.init(rawValue:)) ?? .onednn
    }

    /// The engine's library and version, for `--json` and the bench.
    public var library: String {
        switch self {
        case .openblas: return "OpenBLAS (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "auto"))"
        case .onednn:
            let v = Int(funnel_dnnl_version())
            return "oneDNN \(v / 10000).\(v / 100 % 100).\(v % 100) (\(String(cString: funnel_dnnl_isa())))"
        }
    }
}

/// The precision of the GEMM inputs (`--precision`). Accumulation, outputs, master weights, Adam
/// and the loss stay FP32 either way; the saved model is FP32.
public enum GEMMPrecision: String, CaseIterable, Codable, Sendable {
    case fp32
    /// A and B rounded to bf16 (round to nearest even) before each product, FP32 accumulation:
    /// oneDNN's bf16 kernels (this CPU has AVX512_BF16), about twice the FP32 rate.
    case bf16
}

/// How a network's GEMMs run: a value the network (or a served model) holds, never a process
/// setting, so networks of different engines or precisions can live in one process.
public struct GEMMSettings: Sendable, Equatable {
    public var engine: GEMMEngine
    /// bf16 inputs (oneDNN only).
    public var precision: GEMMPrecision
    /// For a server, whose requests come in every size: oneDNN forward products pad their row
    /// count to the next power of two (at least 16), so all request sizes share at most nine
    /// cached matmul primitives per layer shape (a new primitive costs ~0.25 ms to create); rows
    /// are the same either way (tested). Off (training, batch predict): exact row counts.
    public var bucketRowCounts: Bool

    public init(engine: GEMMEngine = .fromEnvironment, precision: GEMMPrecision = .fp32, bucketRowCounts: Bool = false) {
        self.engine = engine
        self.precision = precision
        self.bucketRowCounts = bucketRowCounts
    }

    /// The engine the environment names (`FUNNEL_GEMM`), FP32, exact row counts.
    public static let standard = GEMMSettings()

    var packed: Int32 { (engine == .onednn ? 1 : 0) | (precision == .bf16 ? 2 : 0) | (bucketRowCounts ? 4 : 0) }

    init(packed p: Int32) {
        self.init(engine: p & 1 != 0 ? .onednn : .openblas, precision: p & 2 != 0 ? .bf16 : .fp32, bucketRowCounts: p & 4 != 0)
    }
}

/// Thin, row-major wrappers over the GEMM engine. Every dense layer's GEMM goes through here so
/// the engine, the threading policy and the calling convention live in one place.
public enum BLAS {
    /// The settings the calling thread's GEMMs run with: those of the network whose call is
    /// running on this thread (`with`), else `GEMMSettings.standard`.
    public static var current: GEMMSettings {
        let p = funnel_gemm_thread_settings()
        return p < 0 ? .standard : GEMMSettings(packed: p)
    }

    /// Runs `body` with `settings` for the GEMMs it makes on this thread (a network sets its own
    /// at each call that runs on a worker thread), then restores what was set before.
    @inline(__always)
    public static func with<T>(_ settings: GEMMSettings, _ body: () throws -> T) rethrows -> T {
        let previous = funnel_gemm_thread_settings()
        funnel_gemm_set_thread_settings(settings.packed)
        defer { funnel_gemm_set_thread_settings(previous) }
        return try body()
    }

    /// oneDNN takes another kernel below 16 rows, whose sums differ in the last bits; from 16 rows
    /// on every row's result is the same whatever the row count (measured for M = 16…4096 on
    /// every tower shape, tested up to 2,100). The shim therefore runs products of fewer rows of A
    /// (not transposed) padded to 16, and with `bucketRowCounts` rounds forward products up to
    /// powers of two, so a row's prediction never depends on how many rows share its batch
    /// (`funnel predict` splits rows over workers, `funnel serve` predicts each request whole:
    /// the CSV and HTTP paths must print the same bytes).
    ///
    /// Forward products (A as stored, B transposed: x·Wᵀ) and every bf16 product run on cached
    /// oneDNN matmul primitives (its brgemm kernels); the backward FP32 products on `dnnl_sgemm`,
    /// which is faster for them here (scale-50 training: matmul for dW 367k samples/s, sgemm 390k).
    @inline(__always)
    private static func oneDNN(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                               precision: GEMMPrecision) {
        let ta: CChar = transA ? 84 : 78, tb: CChar = transB ? 84 : 78
        let status: Int32
        if precision == .bf16 {
            status = funnel_dnnl_gemm_bf16(ta, tb, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        } else if !transA && transB {
            status = funnel_dnnl_matmul_f32(ta, tb, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        } else {
            status = funnel_dnnl_sgemm(ta, tb, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        }
        precondition(status == 0, "oneDNN \(precision) GEMM failed with status \(status) (m \(m), n \(n), k \(k))")
    }

    /// The bf16 bit patterns `--precision bf16` rounds `values` to (round to nearest even).
    static func bf16Bits(_ values: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { funnel_bf16_from_float(src.baseAddress, $0.baseAddress, Int64(values.count)) }
        }
        return out
    }

    /// A dense layer's forward, y[m×n] = x[m×k]·wᵀ + bias (w stored n×k, rows contiguous), then
    /// ReLU when `relu`. On oneDNN the bias and the ReLU are fused into the matmul primitive (its
    /// bias argument and an eltwise post-op: no separate passes over y); elsewhere y is prefilled
    /// with the bias, multiplied with beta 1, then rectified. Either way each output is one
    /// addition of the bias to the same product. oneDNN's ReLU writes −0 for negative inputs where
    /// Funnel's writes +0 (equal values; NaN stays NaN in both).
    public static func linear(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>, relu: Bool, y: UnsafeMutablePointer<Float>) {
        guard m > 0 else { return }
        let settings = current
        if settings.engine == .onednn && n > 1 {
            let precision = settings.precision
            let status = funnel_dnnl_linear(precision == .bf16 ? 1 : 0, Int64(m), Int64(n), Int64(k), x, Int64(k), w, Int64(k),
                                            bias, relu ? 1 : 0, y, Int64(n))
            precondition(status == 0, "oneDNN \(precision) linear layer failed with status \(status) (m \(m), n \(n), k \(k))")
            return
        }
        for r in 0..<m { (y + r * n).update(from: bias, count: n) }
        gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: x, lda: k, b: w, ldb: k, beta: 1, c: y, ldc: n)
        if relu { ReLU.forward(y, count: m * n) }
    }

    /// Sets the number of OpenBLAS worker threads. A fixed count keeps GEMM results bitwise
    /// reproducible (OpenBLAS splits work by thread count, not by timing).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major.
    /// - Parameters: `transA`: A is stored k×m and used transposed; `transB`: B is stored n×k.
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let settings = current
        if settings.engine == .onednn && n > 1 && (m > 1 || !transA) {
            oneDNN(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: beta, c: c, ldc: ldc, precision: settings.precision)
            return
        }
        cblas_sgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans,
            transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb),
            beta, c, Int32(ldc))
    }
}
