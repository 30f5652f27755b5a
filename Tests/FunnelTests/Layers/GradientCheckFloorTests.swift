import XCTest
@testable import Funnel

/// `checkGradient` itself: a gradient below its per-coordinate tolerance must still be verified
/// (a zero or sign-flipped analytic gradient fails), and a parameter the loss ignores passes only
/// with an analytic gradient of exactly zero.
final class GradientCheckFloorTests: XCTestCase {
    private var captured: [String]?

    override func recordFailure(withDescription description: String, inFile filePath: String, atLine lineNumber: Int, expected: Bool) {
        if captured != nil { captured!.append(description); return }
        super.recordFailure(withDescription: description, inFile: filePath, atLine: lineNumber, expected: expected)
    }

    /// The failures `checkGradient` records for `loss` = scale · Σ w_i x_i (Float) with the given analytic gradient.
    private func failures(scale: Float, analytic: @escaping (Int) -> Float) -> [String] {
        var x = (0..<30).map { Float($0 % 7) * 0.1 + 0.2 }
        let w = (0..<30).map { Float($0 % 5) - 1.5 }
        captured = []
        x.withUnsafeMutableBufferPointer { b in
            checkGradient(name: "tiny", values: b.baseAddress!, count: b.count, analytic: analytic) {
                Double((0..<30).reduce(Float(0.7)) { $0 + scale * w[$1] * b[$1] })
            }
        }
        defer { captured = nil }
        return captured!
    }

    func testASmallGradientIsVerifiedNotWavedThrough() {
        let scale: Float = 3e-4  // every coordinate's gradient ≤ 7.5e-4: below the 2e-3 tolerance
        let w = (0..<30).map { Float($0 % 5) - 1.5 }
        XCTAssertEqual(failures(scale: scale) { scale * w[$0] }, [], "the true gradient passes")
        XCTAssertTrue(failures(scale: scale) { _ in 0 }.contains { $0.contains("along the gradient") }, "a zero gradient fails")
        XCTAssertFalse(failures(scale: scale) { -scale * w[$0] }.isEmpty, "the gradient with its sign flipped fails")
    }

    func testAParameterTheLossIgnoresNeedsAnExactlyZeroGradient() {
        XCTAssertEqual(failures(scale: 0) { _ in 0 }, [])
        XCTAssertTrue(failures(scale: 0) { $0 == 3 ? 1e-4 : 0 }.contains { $0.contains("does not depend on it") })
    }
}
