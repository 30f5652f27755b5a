import Foundation
import XCTest
@testable import Funnel

/// The exchanges data-parallel training is built on, run on three in-process ranks
/// (`InProcessRanks`) against what they must compute — without mpirun — and the single-process
/// communicator every lone run goes through.
final class CollectivesTests: XCTestCase {
    func testPrimitivesOnThreeRanks() throws {
        let results = try InProcessRanks.run(size: 3) { comm -> [String] in
            let r = comm.rank
            var floats: [Float] = [Float(r), 1, Float(10 * r)]
            try floats.withUnsafeMutableBufferPointer { try comm.allreduceSum($0.baseAddress!, count: 3) }
            var doubles = [Double(r) + 0.5]
            try comm.allreduceSum(&doubles)
            let gathered = try comm.allgather([Int64(r), Int64(-r)])
            // Blocks of different lengths, one empty.
            let bytes = try comm.allgatherBytes([UInt8](repeating: UInt8(r), count: r == 1 ? 0 : r + 2))
            // Rank r sends to rank t a block of t + 1 bytes, each r * 10 + t.
            let received = try comm.exchange((0..<3).map { t in [UInt8](repeating: UInt8(r * 10 + t), count: t + 1) })
            return ["\(floats)", "\(doubles)", "\(gathered)", "\(bytes)", "\(received)",
                    "\(try comm.maximum(r * 7 - 3))", "\(try comm.minimum(r * 7 - 3))"]
        }
        for (r, got) in results.enumerated() {
            XCTAssertEqual(got[0], "[3.0, 3.0, 30.0]")
            XCTAssertEqual(got[1], "[4.5]")
            XCTAssertEqual(got[2], "[[0, 0], [1, -1], [2, -2]]")
            XCTAssertEqual(got[3], "[[0, 0], [], [2, 2, 2, 2]]")
            let expected = (0..<3).map { s in [UInt8](repeating: UInt8(s * 10 + r), count: r + 1) }
            XCTAssertEqual(got[4], "\(expected)", "rank \(r) receives what every rank addressed to it")
            XCTAssertEqual(got[5], "11")
            XCTAssertEqual(got[6], "-3")
        }
    }

    /// One process: every collective is the identity, and nothing is reported as distributed.
    func testSingleProcessCollectivesAreTheIdentity() throws {
        let comm = Communicator.single
        XCTAssertFalse(comm.isDistributed)
        XCTAssertTrue(comm.isSingleProcess)
        XCTAssertNil(comm.shard)
        var x: [Double] = [1.5, -2]
        try comm.allreduceSum(&x)
        XCTAssertEqual(x, [1.5, -2])
        XCTAssertEqual(try comm.allgatherBytes([1, 2, 3]), [[1, 2, 3]])
        XCTAssertEqual(try comm.exchange([[9, 8]]), [[9, 8]])
        XCTAssertEqual(try comm.allgather(values: [Float(0.25)]), [[0.25]])
        XCTAssertEqual(try comm.maximum(4), 4)
    }

    /// The data-parallel reduce: dense gradients and the loss summed; each sparse parameter's
    /// touched rows united in rank order (first-seen), a row touched by several ranks summed.
    func testGradientExchangeSumsDenseAndSparseGradients() throws {
        let results = try InProcessRanks.run(size: 3) { comm -> ([Float], [Int32], [Float], Double) in
            let r = comm.rank
            let dense = Parameter(name: "w", shape: [2, 2])
            for i in 0..<4 { dense.grad.base[i] = Float(r * 4 + i) }
            let table = Parameter(name: "emb", shape: [10, 2], sparse: true, maxTouchedRows: 4, workers: 3)
            // rank 0 touches rows 5, 1; rank 1 row 1; rank 2 rows 7, 5.
            let rows: [[Int32]] = [[5, 1], [1], [7, 5]]
            table.touchedRows = rows[r]
            for (k, _) in rows[r].enumerated() {
                table.rowGradients.base[2 * k] = Float(100 * r + k)
                table.rowGradients.base[2 * k + 1] = 1
            }
            var loss = Double(r) + 1
            try GradientExchange(communicator: comm).reduce([dense, table], loss: &loss)
            let merged = table.touchedRows
            return ((0..<4).map { dense.grad.base[$0] }, merged, (0..<(2 * merged.count)).map { table.rowGradients.base[$0] }, loss)
        }
        for got in results {
            XCTAssertEqual(got.0, [12, 15, 18, 21])
            XCTAssertEqual(got.1, [5, 1, 7])
            // row 5: rank 0's (0, 1) + rank 2's (201, 1); row 1: rank 0's (1, 1) + rank 1's (100, 1); row 7: (200, 1).
            XCTAssertEqual(got.2, [201, 2, 101, 2, 200, 1])
            XCTAssertEqual(got.3, 6)
        }
    }

    /// The towers' bucket started first and the inputs' (a dense layer below the bodies and a
    /// table) summed after it, overlapped or one after the other: the same sums as one reduce.
    func testTowerBucketInFlightWhileTheInputsAreSummed() throws {
        for overlaps in [true, false] {
            let results = try InProcessRanks.run(size: 3) { comm -> [Float] in
                let r = Float(comm.rank)
                let tower = Parameter(name: "tower", shape: [3]), cross = Parameter(name: "cross", shape: [2])
                for i in 0..<3 { tower.grad.base[i] = r * 10 + Float(i) }
                for i in 0..<2 { cross.grad.base[i] = r + 0.5 * Float(i) }
                let table = Parameter(name: "emb", shape: [4, 1], sparse: true, maxTouchedRows: 4, workers: 1)
                table.touchedRows = [Int32(comm.rank)]
                table.rowGradients.base[0] = r + 1
                let exchange = GradientExchange(communicator: comm)
                exchange.overlaps = overlaps
                try exchange.startTowers([tower], loss: Double(r) + 1)
                let loss = try exchange.finish([cross, table])
                return (0..<3).map { tower.grad.base[$0] } + (0..<2).map { cross.grad.base[$0] } + (0..<3).map { table.rowGradients.base[$0] }
                    + table.touchedRows.map(Float.init) + [Float(loss)]
            }
            for got in results { XCTAssertEqual(got, [30, 33, 36, 3, 4.5, 1, 2, 3, 0, 1, 2, 6], "overlapped: \(overlaps)") }
        }
    }

    /// A rank's message cut short or with a count past its end is a located error, not a crash.
    func testMalformedRankMessagesAreRefused() throws {
        var w = ByteWriter()
        w.putCount(1_000_000)
        w.put(Int32(3))
        try w.bytes.withUnsafeBytes { raw in
            var cursor = ByteCursor(raw, what: "rank 2's gradient message")
            XCTAssertThrowsError(try cursor.readCount(elementBytes: 12)) { XCTAssertTrue("\($0)".contains("rank 2's gradient message")) }
            var short = ByteCursor(UnsafeRawBufferPointer(rebasing: raw[0..<5]), what: "rank 1's label message")
            XCTAssertThrowsError(try short.read(Int64.self)) { XCTAssertTrue("\($0)".contains("cut short")) }
        }
    }

    /// Rows spread 5/0/3 over three ranks, moved to an even spread: in rank order the rows and
    /// labels are the table's, each rank holding its target run.
    func testRowRebalancingKeepsTheTableInOrder() throws {
        let d = 2
        let all = FeatureMatrix(rows: 8, names: ["a", "b"], values: (0..<16).map(Float.init))
        let labels: [Float] = [0, 1, 0, 1, 1, 0, 0, 1]
        let results = try InProcessRanks.run(size: 3) { comm -> ([Float], [Float]) in
            let source = RowPartition(counts: [5, 0, 3], rank: comm.rank), target = RowPartition(counts: [3, 3, 2], rank: comm.rank)
            let mine = all.subset(Array(source.positions))
            let (m, y) = try RowRebalancing.move(mine, labels: Array(labels[source.positions]), from: source, to: target, comm)
            return (m.values, y)
        }
        XCTAssertEqual(results.flatMap(\.0), all.values)
        XCTAssertEqual(results.flatMap(\.1), labels)
        XCTAssertEqual(results.map { $0.0.count / d }, [3, 3, 2])
    }

    /// The label view: every rank holds every row's labels in file order, and knows which rows
    /// it holds the features of.
    func testLabelViewOrdersEveryRanksRowsAsOneProcess() throws {
        let results = try InProcessRanks.run(size: 3) { comm -> ([Int32], [Float], [Int32]) in
            // Rank r holds source rows r, r + 3, r + 6 (of 8).
            let rows = stride(from: comm.rank, to: 8, by: 3).map(Int32.init)
            let local = EncodedDataset(rowCount: rows.count, fields: 0, denseCount: 0, ids: [], dense: [],
                                       click: rows.map { Float($0 % 2) }, conversion: rows.map { $0 == 3 ? 1 : 0 }, sourceRows: rows)
            let view = try ShardView.labelView(of: local, communicator: comm)
            return (view.sourceRows, view.click!, view.shard!.localIndex)
        }
        for (r, got) in results.enumerated() {
            XCTAssertEqual(got.0, Array(0..<8))
            XCTAssertEqual(got.1, [0, 1, 0, 1, 0, 1, 0, 1])
            XCTAssertEqual(got.2, (0..<8).map { $0 % 3 == r ? Int32($0 / 3) : -1 })
        }
    }

    /// The GBDT feature pipeline fitted on three ranks' contiguous runs (label encoders, crosses,
    /// out-of-fold target encoding, group statistics with medians — each merged across ranks)
    /// gives each rank exactly its rows of the one-machine matrix.
    func testFeaturePipelineOnThreeRanksIsOneMachinesMatrix() throws {
        let dir = makeTempDirectory("funnel-collectives")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var text = "day,a,b,x,y,click,purchase\n"
        var rng = RandomSource(seed: 5, stream: 1)
        for i in 0..<90 {
            let click = rng.uniform() < 0.4 ? 1 : 0
            text += "\(45 + i % 5),\(Int(rng.uniform() * 4)),\(Int(rng.uniform() * 3)),\(i % 7 == 0 ? "" : String(format: "%.2f", rng.uniform() * 9)),"
                + "\(Int(rng.uniform() * 50)),\(click),\(click == 1 && rng.uniform() < 0.5 ? 1 : 0)\n"
        }
        var o = ReadOptions()
        o.dayColumn = "day"; o.categorical = ["a", "b"]; o.dense = ["x", "y"]
        let (table, _) = try GBDTData.readTraining(writeFile(dir, "t.csv", text), preset: .generic, options: o)
        var config = TabularFeatureConfig()
        config.crosses = [["a", "b"]]
        config.groupStatistics = [GroupStatisticSpec(by: "a", of: "x")]
        config.targetEncoding.targets = [.install]
        config.targetEncoding.columns = ["a", "a*b"]
        config.targetEncoding.folds = 3
        let whole = try TabularFeaturePipeline.fit(table, config: config, seed: 3).matrix
        let shared = config  // a constant the rank threads share
        let pieces = try InProcessRanks.run(size: 3) { comm -> [Float] in
            let mine = GBDTData.contiguousShard(of: table, comm)
            let partition = try RowPartition.gather(localRows: mine.rowCount, comm)
            return try TabularFeaturePipeline.fit(mine, config: shared, seed: 3, communicator: comm, partition: partition).matrix.values
        }
        XCTAssertEqual(pieces.map { $0.count / whole.columns }, [30, 30, 30])
        XCTAssertEqual(pieces.flatMap { $0 }, whole.values)
    }
}
