import XCTest
@testable import Funnel

/// Request sharing computes a request's part once (`RequestSharing`, `RequestSplit`): it must
/// give the per-row path's losses, gradients, predictions and trained weights (the summation
/// order is the only difference), for every model on every trunk — split or fallen back.
final class RequestSharingTests: XCTestCase {
    /// 4 fields of 6 ids each: 0 (single) and 1 (multi-valued) are the request's, 2 (single) and
    /// 3 (multi-valued) the impression's; 2 dense features. Requests of 1–6 rows, their rows
    /// interleaved in the file.
    static func requestData(rows: Int, seed: UInt64, clickRate: Double = 0.5) -> EncodedDataset {
        var rng = RandomSource(seed: seed)
        var requestOfRow: [Int] = []
        while requestOfRow.count < rows {
            let r = requestOfRow.isEmpty ? 0 : requestOfRow.max()! + 1
            requestOfRow += Array(repeating: r, count: min(1 + rng.below(6), rows - requestOfRow.count))
        }
        rng.shuffle(&requestOfRow)
        let requests = requestOfRow.max()! + 1
        func bag(_ field: Int) -> [(ids: [Int32], weights: [Float])] {
            (0..<max(rows, requests)).map { _ in
                let n = rng.below(4)
                return ((0..<n).map { _ in Int32(field * 6 + rng.below(6)) }, (0..<n).map { _ in Float(0.25 + 2 * rng.uniform()) })
            }
        }
        let userIds = (0..<requests).map { _ in Int32(rng.below(6)) }
        let userBags = bag(1), itemBags = bag(3)
        var ids: [Int32] = [], dense: [Float] = [], click: [Float] = [], conv: [Float] = []
        var bags = [EncodedBag](), offsets: [[Int32]] = [[0], [0]], bagIds: [[Int32]] = [[], []], weights: [[Float]] = [[], []]
        for (k, q) in requestOfRow.enumerated() {
            ids += [userIds[q], 6, Int32(12 + rng.below(6)), 18]
            dense += [Float(rng.normal()), Float(rng.normal())]
            let c: Float = rng.uniform() < clickRate ? 1 : 0
            click.append(c)
            conv.append(c == 1 && rng.uniform() < 0.5 ? 1 : 0)
            for (b, values) in [userBags[q], itemBags[k]].enumerated() {
                bagIds[b] += values.ids; weights[b] += values.weights; offsets[b].append(Int32(bagIds[b].count))
            }
        }
        bags = [EncodedBag(field: 1, offsets: offsets[0], ids: bagIds[0], weights: weights[0]),
                EncodedBag(field: 3, offsets: offsets[1], ids: bagIds[1], weights: weights[1])]
        return EncodedDataset(rowCount: rows, fields: 4, denseCount: 2, ids: ids, dense: dense, click: click, conversion: conv,
                              sourceRows: (0..<rows).map(Int32.init), bags: bags,
                              requests: EncodedRequests(keys: requestOfRow.map { Int64($0) * 7 + 3 }, fields: [0, 1]))
    }

    static func config(_ kind: ModelKind, trunk: TrunkKind, pooling: BagPooling = .sum) -> ModelConfig {
        var config = ModelConfig(kind: kind)
        config.embeddingDim = 3
        config.trunk = trunk
        if trunk == .dcn { (config.crossLayers, config.crossRank) = (2, 2) }
        config.hidden = [6, 4]
        config.bottom = trunk == .sharedBottom ? [6, 5] : []
        config.experts = 2
        config.expertHidden = [5]
        config.batchSize = 16
        config.seed = 5
        config.pooling = pooling
        return config
    }

    static func network(_ config: ModelConfig, maxBatch: Int = 32, workers: Int = 1) -> FunnelNetwork {
        FunnelNetwork(config: config, embeddingRows: 24, fields: 4, denseCount: 2, maxBatch: maxBatch, workers: workers,
                      bagFields: [1, 3], maxBagValues: 6)
    }

    /// Every model, every stage, every trunk (DCN-v2 and PLE fall back): one batch's loss and
    /// every parameter's gradient, shared against per row.
    func testSharedGradientsEqualThePerRowOnesForEveryModelAndTrunk() {
        let data = Self.requestData(rows: 30, seed: 3)
        for (k, kind) in ModelKind.allCases.enumerated() {
            let trunks = kind.requiredTrunk.map { [$0] } ?? [.esmm, .sharedBottom, .mmoe, .ple, .dcn]
            for trunk in trunks {
                let config = Self.config(kind, trunk: trunk, pooling: k % 2 == 0 ? .sum : .mean)
                // Fields 0 and 1: one run of request columns (W used in place); field 1 alone: the
                // impression's columns in two runs (packed).
                for (s, stage) in Architecture.of(kind).stages.enumerated() {
                    compareGradients(config, objective: stage.objective, data: data, shared: (k + s) % 2 == 0 ? [0, 1] : [1],
                                     label: "\(kind.rawValue)/\(trunk.rawValue)/\(stage.objective.rawValue)")
                }
            }
        }
    }

    private func gradients(_ net: FunnelNetwork, _ batch: Batch, _ objective: Objective) -> (Double, [String: [Int: [Float]]], [String: [Float]]) {
        let loss = net.computeGradients(batch, objective: objective)
        var sparse: [String: [Int: [Float]]] = [:], dense: [String: [Float]] = [:]
        for p in net.parameters(for: objective) {
            if p.isSparse {
                var rows: [Int: [Float]] = [:]
                for (s, r) in p.touchedRows.enumerated() { rows[Int(r)] = (0..<p.rowWidth).map { p.rowGradients[s * p.rowWidth + $0] } }
                sparse[p.name] = rows
            } else {
                dense[p.name] = (0..<p.count).map { p.grad[$0] }
            }
        }
        return (loss, sparse, dense)
    }

    private func compareGradients(_ config: ModelConfig, objective: Objective, data: EncodedDataset, shared fields: [Int], label: String) {
        let net = Self.network(config)
        let rows: [Int32] = (0..<Int32(30)).filter { objective.rawValue.contains("cvr") ? data.click![Int($0)] == 1 || $0 % 3 == 0 : true }
        let perRow = net.makeBatch()
        rows.withUnsafeBufferPointer { perRow.fill(from: data, rows: $0) }
        let (l0, s0, d0) = gradients(net, perRow, objective)
        XCTAssertNotNil(net.shareRequests(fields: fields), label)
        let shared = net.makeBatch()
        rows.withUnsafeBufferPointer { shared.fill(from: data, rows: $0) }
        XCTAssertLessThan(shared.requestCount, rows.count, label)
        let (l1, s1, d1) = gradients(net, shared, objective)
        net.shareRequests(fields: nil)
        XCTAssertEqual(l0, l1, accuracy: 1e-6, label)
        for (name, g) in d0 {
            let h = d1[name]!
            for i in g.indices { XCTAssertEqual(g[i], h[i], accuracy: 1e-5 + 1e-4 * abs(g[i]), "\(label) \(name)[\(i)]") }
        }
        for (name, rows) in s0 {
            XCTAssertEqual(Set(rows.keys), Set(s1[name]!.keys), "\(label) \(name): touched rows")
            for (r, g) in rows {
                for d in g.indices { XCTAssertEqual(g[d], s1[name]![r]![d], accuracy: 1e-5 + 1e-4 * abs(g[d]), "\(label) \(name) row \(r)") }
            }
        }
    }

    /// Predictions of every model, shared against per row, within 1e-5 — on both GEMM precisions.
    func testSharedPredictionsEqualThePerRowOnes() {
        let data = Self.requestData(rows: 200, seed: 8)
        for kind in ModelKind.allCases {
            for trunk in kind.requiredTrunk.map({ [$0] }) ?? [.esmm, .mmoe, .dcn] {
                for precision in [GEMMPrecision.fp32, .bf16] {
                    let net = Self.network(Self.config(kind, trunk: trunk), workers: 2)
                    net.gemm.precision = precision
                    let plain = net.predict(data)
                    net.shareRequests(fields: [0, 1])
                    let shared = net.predict(data)
                    for (a, b) in [(plain.ctr, shared.ctr), (plain.cvr, shared.cvr), (plain.ctcvr, shared.ctcvr)] {
                        for i in a.indices where !a[i].isNaN {
                            XCTAssertEqual(a[i], b[i], accuracy: 1e-5, "\(kind.rawValue)/\(trunk.rawValue)/\(precision) row \(i)")
                        }
                    }
                }
            }
        }
    }

    /// Training over batches of whole requests: the shared run's weights equal the per-row run's
    /// on the same batches (1e-4, as the data-parallel tests), with two workers.
    func testTrainingSharedEqualsPerRowOnTheSameBatches() throws {
        let data = Self.requestData(rows: 300, seed: 21)
        for (kind, trunk) in [(ModelKind.esmm, TrunkKind.esmm), (.esmm, .mmoe), (.base, .esmm), (.taml, .taml)] {
            var config = Self.config(kind, trunk: trunk)
            config.epochs = 2
            var weights: [[Float]] = []
            for share in [false, true] {
                let net = Self.network(config, maxBatch: RequestBatches.largestBatch(batchSize: 16), workers: 2)
                if share { net.shareRequests(fields: [0, 1]) }
                let trainer = Trainer(config: config)
                trainer.requestBatches = true
                _ = try trainer.train(net, on: data)
                weights.append(net.parameters.flatMap { p in (0..<p.count).map { p.value[$0] } })
            }
            for i in weights[0].indices {
                XCTAssertEqual(weights[0][i], weights[1][i], accuracy: 1e-4, "\(kind.rawValue)/\(trunk.rawValue) weight \(i)")
            }
        }
    }

    /// Batches close at the first request boundary at or after the batch size; a request longer
    /// than a batch is cut into batch-sized pieces; every row appears once.
    func testRequestBatchesCloseAtRequestBoundaries() {
        let keys: [Int64] = (0..<500).map { Int64($0 % 7 == 0 ? 1_000 : $0 / 9) }  // key 1000: a 72-row request
        let rows = (0..<Int32(500)).filter { $0 % 5 != 1 }  // a sample space that dropped rows
        var rng = RandomSource(seed: 4)
        let b = RequestBatches(rows, keys: keys, batchSize: 20, shuffle: true, rng: &rng)
        XCTAssertEqual(b.rows.sorted(), rows)
        XCTAssertEqual(b.piecesCut, 1)
        var start = 0
        var batchOf: [Int64: Set<Int>] = [:]
        for (i, end) in b.ends.enumerated() {
            let n = end - start
            if i < b.ends.count - 1 { XCTAssertGreaterThanOrEqual(n, 20) }
            XCTAssertLessThanOrEqual(n, RequestBatches.largestBatch(batchSize: 20))
            for r in b.rows[start..<end] { batchOf[keys[Int(r)], default: []].insert(i) }
            start = end
        }
        for (key, batches) in batchOf where key != 1_000 { XCTAssertEqual(batches.count, 1, "request \(key) spans batches") }
        XCTAssertGreaterThan(batchOf[1_000]!.count, 1)
        // Pieces of at most 4 rows: every request of more is cut (the 9-row ones and the long one).
        var rng2 = RandomSource(seed: 4)
        let small = RequestBatches(rows, keys: keys, batchSize: 20, pieceRows: 4, shuffle: false, rng: &rng2)
        XCTAssertEqual(small.rows.sorted(), rows)
        let sizes = Dictionary(grouping: rows, by: { keys[Int($0)] }).mapValues(\.count)
        XCTAssertEqual(small.piecesCut, sizes.values.filter { $0 > 4 }.count)
        // Pieces of at most 4 rows overshoot a batch by at most 3.
        var begin = 0
        for end in small.ends.dropLast() {
            XCTAssertTrue((20...23).contains(end - begin), "batch of \(end - begin)")
            begin = end
        }
    }
}
