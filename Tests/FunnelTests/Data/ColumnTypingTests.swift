import XCTest
@testable import Funnel

/// Type inference never flips a column's kind because of a minority of odd values, labels are
/// only labels, and a table without features is its own error.
final class ColumnTypingTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// 20 rows: id (integers), price (decimals), city (text), big (ids past Int64), labels.
    private func table(oddPrice: String? = nil, oddRow: Int = 7) -> String {
        var lines = ["click,purchase,id,price,city,big"]
        for r in 0..<20 {
            let price = r == oddRow ? (oddPrice ?? "1.5") : String(format: "%.2f", Double(r) / 3)
            lines.append("\(r % 2),0,\(r % 5),\(price),c\(r % 3),1234567890123456789\(r)")
        }
        return writeFile(dir, "t.csv", lines.joined(separator: "\n") + "\n")
    }

    func testAMinorityOfTextDoesNotFlipADenseColumn() throws {
        let path = table(oddPrice: "abc")
        let layout = try TableReader.inferLayout(try CSVFile(path: path), options: ReadOptions())
        XCTAssertEqual(layout.dense, ["price"])
        XCTAssertEqual(layout.categorical, ["id", "city", "big"], "ids past Int64 stay categorical")
        XCTAssertThrowsError(try DatasetLoader.loadForTraining(path, options: ReadOptions(), minCount: 1)) {
            XCTAssertEqual("\($0)", "\(path):9: column 'price': expected a number, got 'abc'")
        }
        var skipping = ReadOptions()
        skipping.skipBadRows = true
        let (_, data, report) = try DatasetLoader.loadForTraining(path, options: skipping, minCount: 1)
        XCTAssertEqual(data.rowCount, 19)
        XCTAssertEqual(report.skipped["non-numeric value"], 1)
        // Declared categorical, the same column is read as keys.
        var declared = ReadOptions()
        declared.categorical = ["price"]
        XCTAssertEqual(try DatasetLoader.loadForTraining(path, options: declared, minCount: 1).data.rowCount, 20)
    }

    func testLabelsAreOnlyLabels() throws {
        let path = table()
        func refused(_ edit: (inout ReadOptions) -> Void, _ expected: String) {
            var o = ReadOptions()
            edit(&o)
            XCTAssertThrowsError(try TableReader.inferLayout(try CSVFile(path: path), options: o)) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
        }
        refused({ $0.conversionColumn = "click" }, "the click and conversion labels name the same column")
        refused({ $0.ignore = ["click"] }, "column 'click': is a label column; it cannot also be ignored")
        refused({ $0.dense = ["purchase"] }, "column 'purchase': is a label column; it cannot also be dense")
        refused({ $0.categorical = ["click"] }, "cannot also be categorical")
        refused({ $0.dayColumn = "purchase" }, "cannot also be the day column")
        refused({ $0.ignore = ["*"] }, "no feature columns left")
    }

    func testColumnKindByMajority() {
        XCTAssertEqual(TokenKind.majority([0, 10, 0, 1]), .integer)
        XCTAssertEqual(TokenKind.majority([0, 5, 5, 1]), .decimal)
        XCTAssertEqual(TokenKind.majority([0, 2, 0, 2]), .text, "ties go to text (categorical)")
        XCTAssertEqual(TokenKind.majority([4, 0, 0, 0]), .empty)
        let big = Array("12345678901234567890123".utf8)
        XCTAssertEqual(big.withUnsafeBufferPointer { NumberParsing.classifyForInference($0.baseAddress!, $0.count) }, .integer)
    }
}
