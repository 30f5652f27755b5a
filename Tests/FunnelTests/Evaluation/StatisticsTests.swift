import XCTest
@testable import Funnel

final class StatisticsTests: XCTestCase {
    func testSummary() {
        let s = Statistics.summary([1, 2, 3, 4])!
        XCTAssertEqual(s.mean, 2.5)
        XCTAssertEqual(s.std, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(s.se, (5.0 / 3).squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(Statistics.summary([7])!.std, 0)
        XCTAssertNil(Statistics.summary([]))
    }

    func testStudentTailAgainstTables() {
        // Two-sided p for t = 2.228, df = 10 is 0.05; t = 3.169, df = 10 is 0.01 (t tables).
        XCTAssertEqual(Statistics.studentTwoSidedP(t: 2.228, df: 10), 0.05, accuracy: 2e-4)
        XCTAssertEqual(Statistics.studentTwoSidedP(t: 3.169, df: 10), 0.01, accuracy: 1e-4)
        XCTAssertEqual(Statistics.studentTwoSidedP(t: 1.96, df: 1e7), 0.05, accuracy: 1e-4)
        XCTAssertEqual(Statistics.studentTwoSidedP(t: 0, df: 5), 1, accuracy: 1e-12)
        XCTAssertEqual(Statistics.regularizedIncompleteBeta(a: 2, b: 3, x: 0.4), 0.5248, accuracy: 1e-4)
    }

    func testWelchTTestHandComputed() {
        // a: mean 2, var 1 (n 3); b: mean 5, var 4 (n 3): t = −3/√(1/3 + 4/3) = −2.3238,
        // df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 2.9412; two-sided p ≈ 0.1047.
        let p = Statistics.welchTTest([1, 2, 3], [3, 5, 7])!
        XCTAssertEqual(p, 0.1047, accuracy: 5e-4)
        XCTAssertNil(Statistics.welchTTest([1], [2, 3]))
        XCTAssertEqual(Statistics.welchTTest([1, 1], [1, 1]), 1)
        XCTAssertEqual(Statistics.welchTTest([1, 1], [2, 2]), 0)
    }
}
