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

final class TAMLTests: XCTestCase {
    func testLearnersFuseByMeanAndDistillationChangesTheirGradients() throws {
        BLAS.setThreads(1)
        let data = randomDataset(rows: 64, fields: 3, vocab: 10, dense: 2, seed: 7, clickRate: 0.5)
        var config = ModelConfig(kind: .taml)
        XCTAssertEqual(config.learners, 2)
        XCTAssertEqual(config.hidden, [64, 32], "taml-www2023 §3.2 learners")
        config.experts = 2; config.expertHidden = [6]; config.hidden = [5]; config.embeddingDim = 3; config.batchSize = 64
        let net = FunnelNetwork(config: config, embeddingRows: 30, fields: 3, denseCount: 2)
        XCTAssertEqual(net.ctrLearners.count, 2)
        XCTAssertEqual(net.mixtures[0].gateLabels.count, 6, "general, task and own learner experts")
        let batch = Batch(capacity: 64, fields: 3, denseCount: 2)
        batch.fill(from: data, start: 0, count: 64)
        // pCTR is σ(mean of the CTR learners' logits).
        let p = net.predict(data)
        let x = FloatBuffer(count: 64 * net.embeddings[0].outputWidth)
        batch.ids.withUnsafeBufferPointer { net.embeddings[0].forward(ids: $0.baseAddress!, dense: batch.dense.base, batch: 64, into: x.base) }
        net.mixtures[0].forward(x.base, batch: 64, worker: 0)
        let z0 = Array(UnsafeBufferPointer(start: net.ctrLearners[0].forward(net.mixtures[0].output(gate: 0, worker: 0), batch: 64), count: 64))
        let z1 = Array(UnsafeBufferPointer(start: net.ctrLearners[1].forward(net.mixtures[0].output(gate: 1, worker: 0), batch: 64), count: 64))
        for i in 0..<64 { XCTAssertEqual(p.ctr[i], Sigmoid.value((z0[i] + z1[i]) / 2), accuracy: 1e-6) }
        XCTAssertNotEqual(z0, z1, "learners differ")
        // Distillation adds a term: the learners' gradients change with its weight, the loss grows.
        func gradients(_ alpha: Double) -> ([Float], Double) {
            var c = config
            c.distillationCTR = alpha; c.distillationCVR = alpha
            let n = FunnelNetwork(config: c, embeddingRows: 30, fields: 3, denseCount: 2)
            let loss = n.computeGradients(batch, objective: .multiLearner)
            return (n.ctrLearners[0].parameters[0].grad.array, loss)
        }
        let (g0, l0) = gradients(0), (g1, l1) = gradients(0.5)
        XCTAssertNotEqual(g0, g1)
        XCTAssertGreaterThan(l1, l0)
    }
}
