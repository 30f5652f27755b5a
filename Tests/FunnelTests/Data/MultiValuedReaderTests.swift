import XCTest
@testable import Funnel

final class MultiValuedReaderTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testCellsWeightsLimitsAndErrors() throws {
        let path = writeFile(dir, "t.csv", "click,purchase,hist,a\n1,0,3:2|7|9:0.5,1\n0,0,,2\n1,1,x y:3||5,1\n0,0,4:1|5:2|6:2|7:1,3\n")
        var o = ReadOptions()
        o.multiValued = ["hist"]
        o.maxValues = 2
        let layout = try TableReader.inferLayout(try CSVFile(path: path), options: o)
        XCTAssertEqual(layout.multiValued, ["hist"])
        XCTAssertEqual(layout.categorical, ["hist", "a"])
        let raw = try TableReader.read(try CSVFile(path: path), layout: layout, options: o, requireLabels: true)
        let bag = raw.bags[0]
        XCTAssertEqual(bag.offsets, [0, 2, 2, 4, 6], "row 1 kept its 2 highest weights; row 2 is empty; an empty value is skipped")
        XCTAssertEqual(Array(bag.keys[0..<2]), [3, 7], "3 (weight 2) and 7 (1) beat 9 (0.5)")
        XCTAssertEqual(Array(bag.weights[0..<2]), [2, 1])
        XCTAssertEqual(bag.keys[2], CategoryKey.of("x y"))
        XCTAssertEqual(Array(bag.keys[4..<6]), [5, 6], "ties keep the earlier values, in their order")
        // The schema counts every value; encoding gives each value its id and keeps the weights.
        let schema = FeatureSchema.fit(raw, minCount: 1)
        XCTAssertEqual(schema.fields[0].values.sorted(), ["3", "5", "6", "7", "x y"].sorted())
        let encoded = schema.encode(raw)
        XCTAssertEqual(encoded.bags.count, 1)
        XCTAssertEqual(encoded.bags[0].offsets, bag.offsets)
        XCTAssertEqual(encoded.bags[0].weights, bag.weights)
        XCTAssertEqual(encoded.maxBagValues, 2)
        // A bad weight is located.
        let bad = writeFile(dir, "bad.csv", "click,purchase,hist,a\n1,0,3:x,1\n")
        XCTAssertThrowsError(try DatasetLoader.loadForTraining(bad, options: o, minCount: 1)) {
            XCTAssertTrue("\($0)".hasPrefix(bad + ":2: column 'hist': values must be id or id:weight"), "\($0)")
        }
        // Layouts round-trip; single-valued ones are written without the new keys.
        let back = try JSONDecoder().decode(TableLayout.self, from: try JSONEncoder().encode(layout))
        XCTAssertEqual(back, layout)
        var single = layout
        single.multiValued = []
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(single), as: UTF8.self).contains("multiValued"))
    }
}
