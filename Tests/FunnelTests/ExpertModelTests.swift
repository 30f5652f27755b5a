import XCTest
@testable import Funnel

final class ExpertModelTests: XCTestCase {
    func testExpertsStayDistinctAndGatesAreDistributions() throws {
        BLAS.setThreads(1)
        let data = randomDataset(rows: 2000, fields: 3, vocab: 10, dense: 2, seed: 5, clickRate: 0.4)
        var config = ModelConfig(kind: .mmoe)
        config.experts = 3; config.expertHidden = [8]; config.hidden = [8]; config.embeddingDim = 4; config.batchSize = 200
        let net = FunnelNetwork(config: config, embeddingRows: 30, fields: 3, denseCount: 2)
        _ = try Trainer(config: config).train(net, on: data)
        let moe = net.mixtures[0] as! MixtureOfExperts
        XCTAssertEqual(moe.gates.count, 2, "one gate per task (CTR, CVR)")
        // Symmetry is broken at initialisation, so experts compute different functions after training.
        let batch = Batch(capacity: 200, fields: 3, denseCount: 2)
        batch.fill(from: data, start: 0, count: 200)
        let x = FloatBuffer(count: 200 * net.embeddings[0].outputWidth)
        batch.ids.withUnsafeBufferPointer { net.embeddings[0].forward(ids: $0.baseAddress!, dense: batch.dense.base, batch: 200, into: x.base) }
        let outputs = moe.experts.map { Array(UnsafeBufferPointer(start: $0.forward(x.base, batch: 200), count: 200 * 8)) }
        for a in 0..<3 { for b in (a + 1)..<3 { XCTAssertNotEqual(outputs[a], outputs[b], "experts \(a) and \(b) are identical") } }
        let summary = net.gateSummary(data)
        XCTAssertEqual(summary.count, 2)
        for (_, weights) in summary { XCTAssertEqual(weights.reduce(0, +), 1, accuracy: 1e-4) }
    }

    func testPLEGatesWeighOwnAndSharedExperts() throws {
        BLAS.setThreads(1)
        let data = randomDataset(rows: 1000, fields: 3, vocab: 10, dense: 2, seed: 6, clickRate: 0.4)
        var config = ModelConfig(kind: .ple)
        config.experts = 2; config.expertHidden = [6]; config.hidden = [6]; config.embeddingDim = 4; config.batchSize = 200; config.levels = 2
        let net = FunnelNetwork(config: config, embeddingRows: 30, fields: 3, denseCount: 2)
        _ = try Trainer(config: config).train(net, on: data)
        XCTAssertEqual(net.mixtures[0].gateLabels, ["task expert 0", "task expert 1", "shared expert 0", "shared expert 1"])
        let summary = net.gateSummary(data)
        XCTAssertEqual(summary.map(\.head), ["ctr", "cvr"])
        for (_, w) in summary { XCTAssertEqual(w.count, 4); XCTAssertEqual(w.reduce(0, +), 1, accuracy: 1e-4) }
    }
}
