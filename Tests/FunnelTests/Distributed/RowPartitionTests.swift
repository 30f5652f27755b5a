import XCTest
@testable import Funnel

final class RowPartitionTests: XCTestCase {
    func testOffsetsAndPositions() {
        let p = RowPartition(counts: [3, 0, 5], rank: 2)
        XCTAssertEqual(p.total, 8)
        XCTAssertEqual(p.offsets, [0, 3, 3])
        XCTAssertEqual(p.positions, 3..<8)
        XCTAssertEqual(RowPartition(rows: 7).positions, 0..<7)
    }

    /// Even shares, every rank but the first starting on a bagging block, whatever the rows'
    /// current spread (a day-sorted file may leave all training rows on one rank).
    func testBalancedStartsOnBlocks() {
        let lopsided = RowPartition(counts: [10_000, 0, 2_345], rank: 1).balanced(block: 1024)
        XCTAssertEqual(lopsided.total, 12_345)
        XCTAssertEqual(lopsided.offsets, [0, 4096, 8192])
        XCTAssertEqual(lopsided.counts, [4096, 4096, 4153])
        XCTAssertEqual(RowPartition(counts: [1500, 1500], rank: 0).balanced(block: 1024).counts, [1024, 1976])
        // Too few rows for the ranks: some rank gets none (the GBDT path refuses that, naming the model).
        XCTAssertEqual(RowPartition(counts: [600, 600], rank: 0).balanced(block: 1024).counts, [0, 1200])
    }

    /// The positional checksum of a matrix is the sum of its contiguous pieces' checksums.
    func testPositionalChecksumAddsUpOverPieces() {
        let m = FeatureMatrix(rows: 5, names: ["a", "b", "c"], values: (0..<15).map { Float($0) * 0.5 })
        let whole = m.positionalChecksum(firstPosition: 0)
        let a = m.subset([0, 1]).positionalChecksum(firstPosition: 0), b = m.subset([2, 3, 4]).positionalChecksum(firstPosition: 2)
        XCTAssertEqual(whole, a &+ b)
        XCTAssertNotEqual(whole, m.subset([1, 0, 2, 3, 4]).positionalChecksum(firstPosition: 0), "row order matters")
    }
}
