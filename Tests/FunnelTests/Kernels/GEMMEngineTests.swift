import XCTest
@testable import Funnel

/// `--gemm onednn` against OpenBLAS: every transpose combination, leading dimensions wider than
/// the matrices, beta 0 and 1, and matrix-vector shapes (which stay on OpenBLAS) agree within
/// FP32 summation tolerance; the same call twice gives the same bytes.
final class GEMMEngineTests: XCTestCase {
    private func run(_ engine: GEMMEngine, precision: GEMMPrecision = .fp32, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     beta: Float, seed: UInt64) -> [Float] {
        var rng = RandomSource(seed: seed)
        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 1
        let a = (0..<((transA ? k : m) * lda)).map { _ in Float(rng.normal()) }
        let b = (0..<((transB ? n : k) * ldb)).map { _ in Float(rng.normal()) }
        var c = (0..<(m * ldc)).map { _ in Float(rng.normal()) }
        BLAS.with(GEMMSettings(engine: engine, precision: precision)) {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.75, a: pa.baseAddress!, lda: lda,
                                  b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                    }
                }
            }
        }
        return c
    }

    func testOneDNNAgreesWithOpenBLAS() {
        var seed: UInt64 = 1
        for (m, n, k) in [(64, 48, 37), (300, 200, 274), (7, 1, 50), (1, 33, 20), (129, 80, 200)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    for beta: Float in [0, 1] {
                        seed += 1
                        let reference = run(.openblas, transA: transA, transB: transB, m: m, n: n, k: k, beta: beta, seed: seed)
                        let onednn = run(.onednn, transA: transA, transB: transB, m: m, n: n, k: k, beta: beta, seed: seed)
                        var worst: Float = 0
                        for i in 0..<reference.count {
                            worst = max(worst, abs(reference[i] - onednn[i]) / (1 + abs(reference[i])))
                        }
                        XCTAssertLessThan(worst, Float(k) * 2e-7, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta)")
                        XCTAssertEqual(onednn, run(.onednn, transA: transA, transB: transB, m: m, n: n, k: k, beta: beta, seed: seed))
                    }
                }
            }
        }
    }

    /// The dense-layer forward with bias and ReLU fused into oneDNN's matmul agrees with OpenBLAS's
    /// prefilled-bias GEMM followed by Funnel's ReLU, and is the same twice.
    func testFusedLinearAgreesWithOpenBLAS() {
        for (m, n, k) in [(1, 20, 30), (15, 200, 274), (300, 200, 274), (129, 80, 200), (64, 2, 9)] {
            var rng = RandomSource(seed: UInt64(m * n + k))
            let x = (0..<(m * k)).map { _ in Float(rng.normal()) }, w = (0..<(n * k)).map { _ in Float(rng.normal()) }
            let bias = (0..<n).map { _ in Float(rng.normal()) }
            for relu in [false, true] {
                func linear(_ engine: GEMMEngine) -> [Float] {
                    var y = [Float](repeating: .nan, count: m * n)
                    BLAS.with(GEMMSettings(engine: engine)) { BLAS.linear(m: m, n: n, k: k, x: x, w: w, bias: bias, relu: relu, y: &y) }
                    return y
                }
                let reference = linear(.openblas), onednn = linear(.onednn)
                let worst = zip(reference, onednn).map { abs($0 - $1) / (1 + abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, Float(k) * 2e-7, "m \(m) n \(n) k \(k) relu \(relu)")
                if relu { XCTAssertTrue(onednn.allSatisfy { $0 >= 0 }, "ReLU leaves no negative value") }
                XCTAssertEqual(onednn, linear(.onednn))
            }
        }
    }

    func testEngineNamesItsLibrary() {
        XCTAssertTrue(GEMMEngine.onednn.library.hasPrefix("oneDNN 2."), GEMMEngine.onednn.library)
        XCTAssertTrue(GEMMEngine.openblas.library.hasPrefix("OpenBLAS"))
    }

    /// On oneDNN a row's forward product never depends on how many rows share the call (oneDNN
    /// takes another kernel below 16 rows; those calls are padded): what keeps `funnel predict`
    /// (rows split over workers) and `funnel serve` (one request whole) printing the same bytes.
    /// (OpenBLAS does not promise this: its results for these shapes change with the row count.)
    func testForwardRowsDoNotDependOnTheRowCount() {
        for precision in GEMMPrecision.allCases {
            BLAS.with(GEMMSettings(engine: .onednn, precision: precision)) { checkRowIndependence(precision) }
        }
    }

    private func checkRowIndependence(_ precision: GEMMPrecision) {
        for (k, n) in [(274, 200), (200, 80), (29, 8), (80, 3)] {
            var rng = RandomSource(seed: UInt64(k * n))
            let most = 2100
            let a = (0..<(most * k)).map { _ in Float(rng.normal()) }, w = (0..<(n * k)).map { _ in Float(rng.normal()) }
            let bias = (0..<n).map { _ in Float(rng.normal()) }
            func forward(_ m: Int) -> [Float] {
                var c = (0..<m).flatMap { _ in bias }
                BLAS.gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w, ldb: k, beta: 1, c: &c, ldc: n)
                return c
            }
            // The fused dense-layer forward (bias and ReLU inside the matmul) likewise.
            func linear(_ m: Int, relu: Bool) -> [Float] {
                var y = [Float](repeating: .nan, count: m * n)
                BLAS.linear(m: m, n: n, k: k, x: a, w: w, bias: bias, relu: relu, y: &y)
                return y
            }
            let all = forward(most)
            let allLinear = linear(most, relu: false), allReLU = linear(most, relu: true)
            XCTAssertEqual(allLinear, all, "\(precision) k \(k) n \(n): the fused bias is the prefilled bias")
            XCTAssertEqual(allReLU, all.map { $0 > 0 ? $0 : 0 }, "\(precision) k \(k) n \(n): ReLU")
            // Exact row counts (training, batch predict) and row counts padded to a power of
            // two (a server's requests) give the same rows.
            for m in [1, 2, 5, 15, 16, 17, 40, 63, 64, 65, 100, 257, 511, 1000, 2047, 2048, 2049] {
                for call in ["exact", "bucketed"] {
                    BLAS.with(GEMMSettings(engine: .onednn, precision: precision, bucketRowCounts: call == "bucketed")) {
                        XCTAssertTrue(forward(m) == Array(all[0..<(m * n)]),
                                      "\(precision) k \(k) n \(n): \(m) rows (\(call) call) differ from the same rows among \(most)")
                        XCTAssertTrue(linear(m, relu: true) == Array(allReLU[0..<(m * n)]),
                                      "\(precision) k \(k) n \(n): \(m) fused rows (\(call) call) differ")
                    }
                }
            }
        }
    }

    /// `--precision bf16`: the product of bf16-rounded inputs with FP32 accumulation. Against the
    /// FP32 product, each input's rounding (relative 2⁻⁹) bounds the error by about
    /// 2·2⁻⁹·Σ|aᵢ·bᵢ|; every transpose combination and beta 0/1 stay inside it.
    func testBF16IsTheFP32ProductOfRoundedInputs() {
        var seed: UInt64 = 100
        for (m, n, k) in [(64, 48, 37), (300, 200, 274), (5, 20, 30)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    for beta: Float in [0, 1] {
                        seed += 1
                        let reference = run(.onednn, transA: transA, transB: transB, m: m, n: n, k: k, beta: beta, seed: seed)
                        let bf16 = run(.onednn, precision: .bf16, transA: transA, transB: transB, m: m, n: n, k: k, beta: beta, seed: seed)
                        // Inputs are N(0, 1): Σ|aᵢbᵢ| ≈ 0.64·k·|alpha|; the bound below is that with room.
                        let bound = Float(2.0 / 512.0) * 0.75 * Float(k) * 1.5
                        var worst: Float = 0, total: Float = 0
                        for i in 0..<reference.count { worst = max(worst, abs(reference[i] - bf16[i])); total += abs(reference[i] - bf16[i]) }
                        XCTAssertLessThan(worst, bound, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta)")
                        XCTAssertGreaterThan(total, 0, "bf16 rounding must show (else the bf16 path did not run)")
                    }
                }
            }
        }
    }

    /// FP32 → bf16 rounds to nearest, ties to even, keeps infinities, signed zeros and NaN (the
    /// vectorised loop and its AVX-512 build alike: 37 values cover both the vector body and the tail).
    func testBF16RoundingIsNearestEven() {
        let cases: [(Float, UInt16)] = [
            (1, 0x3F80), (Float(bitPattern: 0x3F80_8000), 0x3F80), (Float(bitPattern: 0x3F81_8000), 0x3F82),
            (Float(bitPattern: 0x3F80_8001), 0x3F81), (-2.5, 0xC020), (0, 0x0000), (-0.0, 0x8000),
            (.infinity, 0x7F80), (-.infinity, 0xFF80), (.greatestFiniteMagnitude, 0x7F80), (Float(bitPattern: 0x0000_0001), 0x0000),
        ]
        let values = (0..<37).map { cases[$0 % cases.count].0 }
        let bits = BLAS.bf16Bits(values)
        for (i, b) in bits.enumerated() { XCTAssertEqual(b, cases[i % cases.count].1, "value \(values[i])") }
        let nan = BLAS.bf16Bits([.nan, -.nan, Float(bitPattern: 0x7F80_0001)])
        for b in nan { XCTAssertTrue(Float(bitPattern: UInt32(b) << 16).isNaN, String(b, radix: 16)) }
    }
}
