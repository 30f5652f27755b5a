import XCTest
@testable import Funnel

/// `--share-embedding`: fields of a group get one vocabulary (counted over all of them) and one
/// block of embedding rows, owned by the group's first field in column order.
final class SharedVocabulariesTests: XCTestCase {
    private func raw() -> RawTable {
        let layout = TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: ["user", "history", "item"], dense: [], ignored: [])
        var raw = RawTable(layout: layout, hasLabels: true, file: "t")
        // item takes 1…3, history 2…5; 5 appears once, so --min-count 2 drops it.
        let rows: [[Int64]] = [[1, 2, 1], [2, 3, 2], [1, 4, 3], [3, 2, 2], [1, 5, 3], [2, 4, 1]]
        for (i, k) in rows.enumerated() { raw.appendRow(keys: k, dense: [], labels: (0, 0), day: nil, sourceRow: Int32(i)) }
        return raw
    }

    func testAGroupSharesOneVocabularyAndOneBlockOfRows() throws {
        let sharing = try SharedVocabularies.parse(["item,history"])
        let schema = FeatureSchema.fitWithNotes(raw(), minCount: 2, hashing: HashBuckets(), sharing: sharing).schema
        // history comes before item in column order: it owns the rows.
        XCTAssertNil(schema.fields[1].sharesRowsWith)
        XCTAssertEqual(schema.fields[2].sharesRowsWith, "history")
        XCTAssertEqual(schema.fields[1].values, ["1", "2", "3", "4"], "counted over both fields: 1 twice in item, 5 once in all")
        XCTAssertEqual(schema.fields[2].values, schema.fields[1].values)
        let offsets = schema.fieldOffsets
        XCTAssertEqual(offsets[1], offsets[2])
        XCTAssertEqual(schema.embeddingRows, schema.fields[0].size + schema.fields[1].size)
        // The same value is the same table row in either field.
        let encoded = schema.encode(raw())
        let historyOfRow0 = encoded.ids[0 * 3 + 1], itemOfRow1 = encoded.ids[1 * 3 + 2]  // both the value 2
        XCTAssertEqual(historyOfRow0, itemOfRow1)
        // A saved schema keeps the sharing.
        let back = try JSONDecoder().decode(FeatureSchema.self, from: try JSONEncoder().encode(schema))
        XCTAssertEqual(back.fieldOffsets, offsets)
        XCTAssertEqual(back.embeddingRows, schema.embeddingRows)
    }

    func testBadGroupsAreRefusedInWords() throws {
        for (spec, message) in [(["item"], "two or more fields"), (["item,"], "two or more fields"), (["item,history", "history,user"], "names 'history' twice")] {
            XCTAssertThrowsError(try SharedVocabularies.parse(spec)) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        let layout = raw().layout
        XCTAssertThrowsError(try SharedVocabularies.parse(["item,nope"]).check(layout, hashing: HashBuckets())) {
            XCTAssertTrue("\($0)".contains("'nope' is not a categorical column"), "\($0)")
        }
        XCTAssertThrowsError(try SharedVocabularies.parse(["item,history"]).check(layout, hashing: HashBuckets(perField: ["item": 8]))) {
            XCTAssertTrue("\($0)".contains("'item' is hashed"), "\($0)")
        }
    }
}
