import XCTest
@testable import Funnel

final class HashBucketsTests: XCTestCase {
    func testParse() throws {
        XCTAssertEqual(try HashBuckets.parse("4096"), HashBuckets(all: 4096))
        XCTAssertEqual(try HashBuckets.parse("101=10, 205=20"), HashBuckets(perField: ["101": 10, "205": 20]))
        XCTAssertEqual(try HashBuckets.parse("64,205=20"), HashBuckets(all: 64, perField: ["205": 20]))
        for bad in ["0", "x=", "=5", "abc", "10,,20", "1000000000"] {
            XCTAssertThrowsError(try HashBuckets.parse(bad), bad)
        }
    }

    /// The hash is part of the model format: a saved model must map ids the same way forever.
    func testBucketsAreStable() {
        XCTAssertEqual([0, 1, 12345, -7, Int64.max].map { HashBuckets.bucket($0, 1000) }, pinned)
        XCTAssertTrue((0..<10_000).allSatisfy { (1...97).contains(HashBuckets.bucket(Int64($0) * 7919, 97)) })
        // Spread: 10,000 keys over 100 buckets, none empty, none over twice the mean.
        var counts = [Int](repeating: 0, count: 101)
        for k in 0..<10_000 { counts[Int(HashBuckets.bucket(Int64(k), 100))] += 1 }
        XCTAssertEqual(counts[0], 0)
        XCTAssertTrue(counts[1...].allSatisfy { $0 > 50 && $0 < 200 }, "\(counts)")
    }

    // SplitMix64 finalizer of the key, mod n, plus 1 (checked against a Python implementation).
    private let pinned: [Int32] = [536, 466, 945, 753, 40]

    func testHashedFieldsInTheSchema() {
        let layout = TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: ["user", "ad"], dense: [], ignored: [])
        var raw = RawTable(layout: layout, hasLabels: true, file: "t")
        for i in 0..<100 { raw.appendRow(keys: [Int64(i), Int64(i % 3)], dense: [], labels: (0, 0), day: nil, sourceRow: Int32(i)) }
        raw.appendRow(keys: [CategoryKey.empty, 1], dense: [], labels: (0, 0), day: nil, sourceRow: 100)
        let (schema, notes) = FeatureSchema.fitWithNotes(raw, minCount: 1, hashing: HashBuckets(perField: ["user": 10]))
        XCTAssertEqual(schema.fields[0].size, 11)
        XCTAssertEqual(schema.fields[0].hashBuckets, 10)
        XCTAssertNil(schema.fields[1].hashBuckets, "other fields keep their vocabulary")
        XCTAssertEqual(schema.fields[0].id(of: CategoryKey.empty), 0, "an empty cell is row 0")
        XCTAssertEqual(schema.fields[0].id(of: 987_654_321), HashBuckets.bucket(987_654_321, 10), "an unseen id still gets its bucket")
        let used = Set((0..<100).map { HashBuckets.bucket(Int64($0), 10) }).count
        XCTAssertEqual(notes, ["field user: 100 distinct values hashed into 10 buckets (\(used) used), \(100 - used) collision(s)"])
        // The saved schema round-trips, hashing included.
        let back = try! JSONDecoder().decode(FeatureSchema.self, from: try! JSONEncoder().encode(schema))
        XCTAssertEqual(back.fields[0].id(of: 42), schema.fields[0].id(of: 42))
        XCTAssertEqual(back.embeddingRows, schema.embeddingRows)
    }
}
