import XCTest
@testable import Funnel

final class AdamOptimizerTests: XCTestCase {
    func testDenseStepMatchesHandComputation() {
        let p = Parameter(name: "w", shape: [2])
        p.value[0] = 1; p.value[1] = -2
        p.grad[0] = 0.5; p.grad[1] = -0.1
        let adam = AdamOptimizer(learningRate: 0.1, l2: 0.01)
        adam.apply([p])
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) with g including L2.
        let g0 = 0.5 + 0.01 * 1.0, g1 = -0.1 + 0.01 * -2.0
        XCTAssertEqual(Double(p.value[0]), 1 - 0.1 * g0 / (abs(g0) + 1e-8), accuracy: 1e-6)
        XCTAssertEqual(Double(p.value[1]), -2 - 0.1 * g1 / (abs(g1) + 1e-8), accuracy: 1e-6)
        // Step 2 with the same gradient: m̂ = g, v̂ = g² again (bias correction), same step size.
        p.grad[0] = 0.5
        let before = Double(p.value[0])
        adam.apply([p])
        let g = 0.5 + 0.01 * before
        let m = (0.9 * 0.1 * g0 + 0.1 * g) / (1 - 0.81)
        let v = (0.999 * 0.001 * g0 * g0 + 0.001 * g * g) / (1 - 0.999 * 0.999)
        XCTAssertEqual(Double(p.value[0]), before - 0.1 * m / (v.squareRoot() + 1e-8), accuracy: 1e-5)
    }

    func testSparseStepTouchesOnlyTouchedRows() {
        let p = Parameter(name: "e", shape: [4, 2], sparse: true, maxTouchedRows: 4)
        for i in 0..<8 { p.value[i] = 1 }
        p.touchedRows = [2]
        p.rowGradients[0] = 1; p.rowGradients[1] = -1
        let adam = AdamOptimizer(learningRate: 0.5)
        adam.apply([p])
        XCTAssertEqual(p.value.array, [1, 1, 1, 1, 0.5, 1.5, 1, 1])
        XCTAssertEqual(p.moment1!.array[0..<4], [0, 0, 0, 0], "untouched rows keep zero moments")
    }

    /// The update split across threads is element for element the single-threaded one.
    func testSplittingAcrossWorkersChangesNothing() {
        func parameters() -> [Parameter] {
            var rng = RandomSource(seed: 4)
            let dense = Parameter(name: "w", shape: [300, 200])
            let embedding = Parameter(name: "e", shape: [5_000, 18], sparse: true, maxTouchedRows: 3_000)
            for i in 0..<dense.count { dense.value[i] = Float(rng.normal()); dense.grad[i] = Float(rng.normal()) }
            for i in 0..<embedding.count { embedding.value[i] = Float(rng.normal()) }
            embedding.touchedRows = (0..<3_000).map { Int32(($0 * 7) % 5_000) }
            for i in 0..<(3_000 * 18) { embedding.rowGradients[i] = Float(rng.normal()) }
            return [dense, embedding]
        }
        let one = parameters(), two = parameters()
        let a = AdamOptimizer(learningRate: 0.01, l2: 0.001), b = AdamOptimizer(learningRate: 0.01, l2: 0.001, workers: 2)
        for _ in 0..<3 { a.apply(one); b.apply(two) }
        for (x, y) in zip(one, two) {
            XCTAssertEqual(x.value.array, y.value.array, x.name)
            XCTAssertEqual(x.moment2!.array, y.moment2!.array, x.name)
        }
        XCTAssertNotEqual(one[0].value.array, parameters()[0].value.array, "the update did something")
    }

    /// The sixteen-lane update equals the plain scalar formula bit for bit (lanes and tail).
    func testVectorisedUpdateIsBitIdenticalToScalar() {
        var rng = RandomSource(seed: 9)
        let n = 37
        let p = Parameter(name: "w", shape: [n])
        var w = [Float](), g = [Float]()
        for i in 0..<n {
            p.value[i] = Float(rng.normal()); p.grad[i] = Float(rng.normal())
            w.append(p.value[i]); g.append(p.grad[i])
        }
        let lr: Float = 0.01, l2: Float = 0.001, b1: Float = 0.9, b2: Float = 0.999, eps: Float = 1e-8
        AdamOptimizer(learningRate: lr, l2: l2).apply([p])
        let c1 = Float(1 - pow(Double(b1), 1)), c2 = Float(1 - pow(Double(b2), 1))
        let stepSize = lr * c2.squareRoot() / c1, epsHat = eps * c2.squareRoot()
        for i in 0..<n {
            let gi = g[i] + l2 * w[i]
            let mi = b1 * 0 + (1 - b1) * gi
            let vi = b2 * 0 + (1 - b2) * gi * gi
            XCTAssertEqual(p.value[i].bitPattern, (w[i] - stepSize * mi / (vi.squareRoot() + epsHat)).bitPattern, "element \(i)")
        }
    }
}
