import COpenBLAS

/// Thin, row-major wrappers over OpenBLAS. Every dense layer's GEMM goes through here so the
/// threading policy and the calling convention live in one place.
public enum BLAS {
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
        cblas_sgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans,
            transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb),
            beta, c, Int32(ldc))
    }
}
