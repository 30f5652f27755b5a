import XCTest
@testable import Funnel

/// The sixteen-lane ReLU equals the scalar definition bit for bit, signed zeros and NaN included.
final class ActivationTests: XCTestCase {
    private func values() -> [Float] {
        var rng = RandomSource(seed: 2)
        var v = (0..<53).map { _ in Float(rng.normal()) }
        v[3] = -0.0; v[4] = 0; v[20] = .nan; v[21] = -.infinity; v[40] = .infinity; v[50] = -0.0
        return v
    }

    func testForwardMatchesScalarMax() {
        var x = values()
        let expected = x.map { max($0, 0) }
        x.withUnsafeMutableBufferPointer { ReLU.forward($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(x.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertEqual(x[3].bitPattern, Float(0).bitPattern, "−0 becomes +0, as max(−0, 0)")
        XCTAssertTrue(x[20].isNaN)
    }

    func testBackwardMasksByTheOutput() {
        let y = values().map { max($0, 0) }
        var rng = RandomSource(seed: 3)
        var dy = (0..<y.count).map { _ in Float(rng.normal()) }
        let expected = zip(y, dy).map { $0 > 0 ? $1 : 0 }
        y.withUnsafeBufferPointer { yp in
            dy.withUnsafeMutableBufferPointer { ReLU.backward(output: yp.baseAddress!, gradient: $0.baseAddress!, count: yp.count) }
        }
        XCTAssertEqual(dy.map(\.bitPattern), expected.map(\.bitPattern))
    }
}
