import Foundation
import XCTest
@testable import Funnel

/// The row-sharded embedding table against the replicated path it replaces, on three
/// in-process ranks: the rows it gathers are a replica's, and after the owners' reduce and Adam
/// step every owned row is bit for bit the replicated row.
final class RowShardedTableTests: XCTestCase {
    func testOwnershipDealsRowsRoundRobin() {
        let o = RowOwnership(rows: 10, ranks: 3)
        XCTAssertEqual((0..<3).map { o.localRows(rank: $0) }, [4, 3, 3])
        XCTAssertEqual((0..<10).map { o.owner(of: Int32($0)) }, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], "the hottest (lowest) rows spread over every rank")
        for row in Int32(0)..<10 { XCTAssertEqual(o.globalRow(local: o.localIndex(of: row), rank: o.owner(of: row)), row) }
        XCTAssertEqual(RowOwnership(rows: 2, ranks: 3).localRows(rank: 2), 0)
    }

    func testShardedStepEqualsTheReplicatedStep() throws {
        let rows = 17, dim = 3
        let initial: @Sendable (Int32) -> [Float] = { r in (0..<3).map { Float(r) * 0.1 + Float($0) * 0.01 - 0.5 } }
        // Rank 0 repeats row 5; rows 1, 2 and 16 are touched by two ranks each.
        let batches: [[Int32]] = [[5, 1, 16, 5], [1, 2, 3], [16, 0, 7, 2, 9]]
        let results = try InProcessRanks.run(size: 3) { comm -> (gathered: [Float], sharded: [Int32: [Float]], replicated: [Float]) in
            let r = comm.rank
            let table = RowShardedTable(name: "emb", rows: rows, dim: dim, communicator: comm, maxTouchedRows: 8, initial: initial)
            let gathered = try table.gather(batches[r])
            let unique = RowShardedTable.deduplicated(batches[r]).unique
            var grads: [Float] = []
            for (k, row) in unique.enumerated() {
                for j in 0..<dim { grads.append(Float(r + 1) * 0.3 + Float(row) * 0.02 - Float(k * dim + j) * 0.05) }
            }
            try table.reduceGradients(rows: unique, gradients: grads)
            AdamOptimizer(learningRate: 0.01).apply([table.slice])
            var sharded: [Int32: [Float]] = [:]
            for l in 0..<table.ownership.localRows(rank: r) {
                sharded[table.ownership.globalRow(local: Int32(l), rank: r)] = Array(UnsafeBufferPointer(start: table.slice.value.base + l * dim, count: dim))
            }
            // The replicated path: a whole replica, the all-gather gradient exchange, Adam on every rank.
            let replica = Parameter(name: "emb", shape: [rows, dim], sparse: true, maxTouchedRows: 8, workers: 3)
            for row in 0..<rows { (replica.value.base + row * dim).update(from: initial(Int32(row)), count: dim) }
            replica.touchedRows = unique
            replica.rowGradients.base.update(from: grads, count: grads.count)
            var loss = 0.0
            try GradientExchange(communicator: comm).reduce([replica], loss: &loss)
            AdamOptimizer(learningRate: 0.01).apply([replica])
            return (gathered, sharded, Array(UnsafeBufferPointer(start: replica.value.base, count: rows * dim)))
        }
        for (r, got) in results.enumerated() {
            XCTAssertEqual(got.gathered, batches[r].flatMap(initial), "rank \(r) gathers a replica's rows, in its order")
            XCTAssertEqual(got.replicated, results[0].replicated, "the replicas agree")
            for (row, values) in got.sharded {
                XCTAssertEqual(values, Array(got.replicated[(Int(row) * dim)..<((Int(row) + 1) * dim)]), "row \(row) on its owner, rank \(r)")
            }
        }
        XCTAssertEqual(results.map { $0.sharded.count }, [6, 6, 5], "every row is owned once")
        XCTAssertNotEqual(results[0].replicated, (0..<rows).flatMap { initial(Int32($0)) }, "the step moved the touched rows")
    }

    /// Alone, the table is the whole table: gather is a lookup, the reduce is the identity.
    func testOneRankHoldsTheWholeTable() throws {
        let table = RowShardedTable(name: "emb", rows: 4, dim: 2, communicator: .single, maxTouchedRows: 4) { [Float($0), -Float($0)] }
        XCTAssertEqual(try table.gather([3, 0, 3]), [3, -3, 0, 0, 3, -3])
        try table.reduceGradients(rows: [2, 0], gradients: [1, 2, 3, 4])
        XCTAssertEqual(table.slice.touchedRows, [2, 0])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: table.slice.rowGradients.base, count: 4)), [1, 2, 3, 4])
    }
}
