import XCTest
@testable import Funnel

/// The sharding decision and the bytes it plans, computed before anything is allocated.
final class EmbeddingShardingPlanTests: XCTestCase {
    private func plan(_ mode: EmbeddingShardingMode, threshold: Double = 64, rows: Int = 10_000_000, ranks: Int = 3,
                      continuing: Bool = false) throws -> EmbeddingShardingPlan {
        try EmbeddingShardingPlan.decide(mode, thresholdMiB: threshold, rows: rows, dim: 18, tables: 1, ranks: ranks,
                                         lookupRows: 50_000, continuing: continuing)
    }

    func testAutoShardsTablesOverTheThresholdUnderSeveralRanks() throws {
        // 10M rows × 18 × 3 floats = 2.16 GB: sharded; 100k rows = 21.6 MB: replicated.
        XCTAssertTrue(try plan(.auto).sharded)
        XCTAssertFalse(try plan(.auto, rows: 100_000).sharded)
        XCTAssertTrue(try plan(.auto, threshold: 0, rows: 100_000).sharded)
        XCTAssertFalse(try plan(.auto, ranks: 1).sharded, "one process holds its tables whole")
        XCTAssertFalse(try plan(.replicated).sharded)
        XCTAssertFalse(try plan(.auto, continuing: true).sharded, "a continued model's tables load whole")
        XCTAssertThrowsError(try plan(.row, ranks: 1)) { XCTAssertTrue("\($0)".contains("mpirun"), "\($0)") }
        XCTAssertThrowsError(try plan(.row, continuing: true)) { XCTAssertTrue("\($0)".contains("--init-from"), "\($0)") }
        XCTAssertThrowsError(try plan(.auto, threshold: -1))
    }

    func testBytesPerRankDivideTheTable() throws {
        let whole = try plan(.replicated), shared = try plan(.row)
        XCTAssertEqual(whole.tableBytes, 10_000_000 * 18 * 12)
        XCTAssertEqual(whole.embeddingBytesPerRank, [2.16e9, 2.16e9, 2.16e9])
        // Rank 0 owns ⌈10M / 3⌉ rows with their state, a 4-byte index entry each, and the lookup table.
        let own = 3_333_334.0
        XCTAssertEqual(shared.tableBytes(rank: 0), own * 18 * 12 + own * 4 + 50_000 * (18 * 8 + 4))
        XCTAssertEqual(shared.embeddingBytesPerRank.count, 3)
        XCTAssertLessThan(shared.embeddingBytesPerRank.max()!, whole.tableBytes / 2.9)
        XCTAssertEqual(shared.shard(rank: 2)?.ownership.localRows(rank: 2), 3_333_333)
        XCTAssertNil(whole.shard(rank: 0))
        XCTAssertEqual(shared.rowsHeld(rank: 0), 3_333_334 + 50_000)
    }

    func testABudgetBelowAReplicaIsRefusedNamingTheRanksThatFit() throws {
        // A replica is 2,060 MiB; a budget of 1,000 MiB holds a third of it.
        XCTAssertThrowsError(try plan(.replicated).check(budgetMiB: 1000)) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("2060 MiB per rank") && text.contains("--memory-budget is 1000 MiB"), text)
            XCTAssertTrue(text.contains("fit on 3 ranks"), text)
        }
        XCTAssertNoThrow(try plan(.row).check(budgetMiB: 1000))
        XCTAssertThrowsError(try plan(.row, ranks: 2).check(budgetMiB: 1000)) { XCTAssertTrue("\($0)".contains("fit on 3 ranks"), "\($0)") }
    }
}
