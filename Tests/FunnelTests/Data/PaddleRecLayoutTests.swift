import XCTest
@testable import Funnel

/// The PaddleRec Ali-CCP fixture reads with every value of its multi-valued fields (PaddleRec's
/// own reader truncates each to 3 and drops a token).
final class PaddleRecLayoutTests: XCTestCase {
    func testReadsTheFixtureWithEveryValue() throws {
        let path = Fixtures.path("ali-ccp-paddlerec-esmm/small.txt")
        XCTAssertTrue(PaddleRecLayout.matches(path))
        XCTAssertFalse(PaddleRecLayout.matches(Fixtures.path("ali-ccp-aitm/train.csv")), "a CSV with a header is not PaddleRec")
        let (schema, data, report) = try DatasetLoader.loadForTraining(path, options: ReadOptions(), minCount: 1)
        XCTAssertEqual(data.rowCount, 10)
        XCTAssertEqual(data.clickCount, 2)
        XCTAssertEqual(data.conversionCount, 1)
        XCTAssertEqual(report.dataLines, 10)
        let layout = schema.layout
        XCTAssertEqual(layout.categorical.count, 22, "the 22 field ids present in the file (of Ali-CCP's 23, 126 never occurs here)")
        for f in ["109_14", "110_14", "127_14", "150_14", "210"] { XCTAssertTrue(layout.multiValued.contains(f), f) }
        XCTAssertFalse(layout.multiValued.contains("101"))
        // Row 1 holds 3 values of 210 (PaddleRec's reader drops the first) and every 150_14 value.
        let text = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")[0]
        let k210 = layout.multiValued.firstIndex(of: "210")!
        XCTAssertEqual(data.bags[k210].offsets[1], 3)
        let count150 = text.split(separator: ",").filter { $0.hasPrefix("150_14:") }.count
        let k150 = layout.multiValued.firstIndex(of: "150_14")!
        XCTAssertEqual(Int(data.bags[k150].offsets[1]), count150)
        XCTAssertGreaterThan(count150, 3)
    }
}
