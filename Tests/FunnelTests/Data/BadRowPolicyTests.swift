import Foundation
import XCTest
@testable import Funnel

/// The same three bad rows in every table format — a value no field of the layout names, a
/// label written `1.0`, a bad value — read without and with `--skip-bad-rows`, against the one
/// policy in docs/data-formats.md ("Bad rows"): `1.0` is a label everywhere; a bad value ends
/// the read naming file, line and field, or is skipped and counted by kind; a value with no
/// field is a bad row where the layout was inferred from the file (a CSV cell past the header,
/// a raw Ali-CCP field outside the sampled lines) and is left out and counted where the layout
/// is a trained model's (a PaddleRec field the model never saw).
final class BadRowPolicyTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory("funnel-badrows") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func options(skip: Bool) -> ReadOptions {
        var o = ReadOptions()
        o.skipBadRows = skip
        return o
    }

    /// Without skipping: the first bad row's located error. With it: the rows kept and the kinds counted.
    private func check(_ read: (ReadOptions) throws -> RawTable, firstError: String, line: Int, file: String,
                       keptRows: Int, keptClicks: Float, skipped: [String: Int], _ what: String) throws {
        XCTAssertThrowsError(try read(options(skip: false)), what) { error in
            XCTAssertTrue("\(error)".contains(firstError), "\(what): \(error)")
            XCTAssertTrue("\(error)".contains("\(file):\(line)"), "\(what) names file and line: \(error)")
        }
        let table = try read(options(skip: true))
        XCTAssertEqual(table.rowCount, keptRows, what)
        XCTAssertEqual(table.click.reduce(0, +), keptClicks, "\(what): the 1.0 label reads as 1")
        XCTAssertEqual(table.report.skipped, skipped, what)
    }

    func testCSV() throws {
        let path = writeFile(dir, "t.csv", """
            a,x,click,purchase
            1,0.5,0,0
            2,0.5,1,0,7
            3,0.25,1.0,0
            4,abc,1,1
            5,1.5,1,0

            """)
        try check({ try TableSource.readTraining(path, options: $0) }, firstError: "expected 4 columns, found 5", line: 3, file: "t.csv",
                  keptRows: 3, keptClicks: 2, skipped: ["wrong column count": 1, "non-numeric value": 1], "csv")
    }

    func testRecSys2023() throws {
        let header = RecSys2023Layout.header.joined(separator: "\t")
        func row(_ id: Int, dense: String = "0.5", click: String, extra: String = "") -> String {
            let cells = ["\(id)", "45"] + (2...32).map { "\($0 + id)" } + (33...41).map { _ in "0" } + (42...79).map { _ in dense }
            return (cells + [click, "0"]).joined(separator: "\t") + extra
        }
        let path = writeFile(dir, "r.tsv", ([header, row(1, click: "0"), row(2, click: "1", extra: "\t9"), row(3, click: "1.0"),
                                             row(4, dense: "abc", click: "1"), row(5, click: "1")].joined(separator: "\n")) + "\n")
        XCTAssertTrue(try TableFormats.detect(path, preset: .auto) is RecSys2023Format)
        try check({ o in
            let format = try TableFormats.detect(path, preset: .auto, options: o)
            return try format.read(path, layout: try format.inferLayout(path, options: o, sampleRows: nil), options: o, requireLabels: true)
        }, firstError: "expected 82 columns, found 83", line: 3, file: "r.tsv", keptRows: 3, keptClicks: 2, skipped: ["wrong column count": 1, "non-numeric value": 1],
        "recsys2023")
    }

    func testPaddleRec() throws {
        let path = writeFile(dir, "p.txt", """
            1,0,0,101:5,205:7
            2,1,0,101:6,205:8,999:3
            3,1.0,0,101:7,205:9
            4,1,0,101:8,205
            5,1,1,101:9,205:1

            """)
        XCTAssertTrue(try TableFormats.detect(path) is PaddleRecFormat)
        // Against a trained model's layout (fields 101 and 205): field 999 is left out and counted, not a bad row.
        let layout = TableLayout(clickColumn: PaddleRecLayout.click, conversionColumn: PaddleRecLayout.conversion,
                                 categorical: ["101", "205"], dense: [], ignored: [], multiValued: [])
        try check({ try TableSource.read(path, layout: layout, options: $0, requireLabels: true) },
                  firstError: "expected field:feaid, got '205'", line: 4, file: "p.txt", keptRows: 4, keptClicks: 3,
                  skipped: ["malformed feature": 1], "paddlerec")
        let kept = try TableSource.read(path, layout: layout, options: options(skip: true), requireLabels: true)
        XCTAssertEqual(kept.report.ignoredFieldValues, ["999": 1])
        XCTAssertTrue(kept.report.notes.contains { $0.contains("999 (1)") }, "\(kept.report.notes)")
        // Training infers the layout from every line: 999 is a field, and the malformed line is skipped there too.
        let trained = try TableSource.readTraining(path, options: options(skip: true))
        XCTAssertEqual(trained.layout.categorical, ["101", "205", "999"])
        XCTAssertEqual(trained.rowCount, 4)
    }

    func testRawAliCCP() throws {
        func features(_ list: [(String, Int, String)]) -> String { list.map { "\($0.0)\u{02}\($0.1)\u{03}\($0.2)" }.joined(separator: "\u{01}") }
        let md5 = "0123456789abcdef0123456789abcdef"
        let common = writeFile(dir, "common.csv", "\(md5),1,\(features([("101", 7, "1.0")]))\n")
        let good = features([("205", 1, "1.0")])
        let skeleton = writeFile(dir, "skeleton.csv", [
            "1,0,0,\(md5),1,\(good)", "2,1,0,\(md5),1,\(good)", "3,1,0,\(md5),2,\(features([("205", 2, "1.0"), ("999", 3, "1.0")]))",
            "4,1.0,0,\(md5),1,\(good)", "5,1,0,\(md5),1,\(features([("205", 4, "inf")]))", "6,1,1,\(md5),1,\(good)",
        ].joined(separator: "\n") + "\n")
        XCTAssertTrue(try TableFormats.detect(skeleton) is RawAliCCPFormat)
        XCTAssertThrowsError(try TableSource.readTraining(skeleton, options: ReadOptions())) {
            XCTAssertTrue("\($0)".contains("funnel prepare --layout ali-ccp"), "a skeleton alone names the command that reads it: \($0)")
        }
        let out = dir + "/raw.fcache"
        try check({ o in
            try? FileManager.default.removeItem(atPath: out)
            _ = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: o, to: out, sampleRows: 2)
            return try TableSource.readTraining(out, options: ReadOptions())
        }, firstError: "999", line: 3, file: "skeleton.csv", keptRows: 4, keptClicks: 3,
        skipped: ["unknown field": 1, "malformed feature": 1], "ali-ccp raw")
        // A label other than 0/1 is skipped under the raw reader's own key, as it always was.
        let bad = writeFile(dir, "bad-label.csv", "1,0,0,\(md5),1,\(good)\n2,2,0,\(md5),1,\(good)\n")
        try? FileManager.default.removeItem(atPath: out)
        let s = try AliCCPRawLayout.prepare(skeleton: bad, common: common, options: options(skip: true), to: out)
        XCTAssertEqual(s.report.skipped, ["bad label": 1])
    }
}
