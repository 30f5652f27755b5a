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
}
