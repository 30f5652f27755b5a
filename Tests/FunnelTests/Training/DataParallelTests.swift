import XCTest
@testable import Funnel

/// Splitting a batch over workers and reducing must give the whole batch's gradient.
final class DataParallelTests: XCTestCase {
    override func setUp() { BLAS.setThreads(1) }

    /// Every model kind on every objective of its stages, and ESMM on every trunk: three workers'
    /// shard gradients, reduced, equal the whole batch's gradient on one worker.
    func testReducedShardGradientsEqualWholeBatchGradient() {
        var cases: [(String, ModelConfig, Objective)] = []
        for kind in ModelKind.allCases {
            let config = Self.small(ModelConfig(kind: kind))
            for stage in config.architecture.stages { cases.append(("\(kind.rawValue)/\(stage.objective.rawValue)", config, stage.objective)) }
        }
        for trunk in TrunkKind.allCases {
            var config = ModelConfig(kind: .esmm)
            config.trunk = trunk
            cases.append(("esmm on \(trunk.rawValue)", Self.small(config), .entireSpace))
        }
        XCTAssertGreaterThan(cases.count, ModelKind.allCases.count)
        for (name, config, objective) in cases { checkShards(name, config, objective) }
    }

    /// Small sizes that every trunk accepts (bottom and experts where the trunk has them).
    static func small(_ c: ModelConfig) -> ModelConfig {
        var config = c
        config.embeddingDim = 3; config.hidden = [6, 4]; config.batchSize = 10; config.seed = 4
        config.bottom = config.trunk.builder.usesBottom ? [5] : []
        if config.trunk.isGated { config.experts = 2; config.expertHidden = [5]; config.levels = 2 }
        return config
    }

    /// DIN attention pooling (each worker its own gathered values and unit buffers) and DCN-v2
    /// cross layers: the shards' reduced gradients equal the whole batch's too.
    func testAttentionAndCrossShardsEqualWholeBatchGradient() {
        for (kind, trunk) in [(ModelKind.esmm, TrunkKind.dcn), (.mmoe, .mmoe), (.dcmt, .esmm)] {
            var config = ModelConfig(kind: kind)
            config.trunk = trunk
            config = Self.small(config)
            config.pooling = .attention
            config.attentionHidden = 4
            config.attentionNormalize = kind == .mmoe
            checkShards("\(kind.rawValue) attention on \(trunk.rawValue)", config, config.architecture.stages.last!.objective, attention: true)
        }
    }

    private func checkShards(_ name: String, _ config: ModelConfig, _ objective: Objective, attention: Bool = false) {
        var data = randomDataset(rows: 10, fields: 3, vocab: 4, dense: 2, seed: 8, clickRate: 0.6)
        if attention { data = withBag(data, field: 1, vocab: 4, seed: 9) }
        let bags = attention ? [1] : [], plan = attention ? [1: 0] : [:]
        let single = FunnelNetwork(config: config, embeddingRows: 12, fields: 3, denseCount: 2, workers: 1, bagFields: bags,
                                   maxBagValues: 3, attention: plan)
        let multi = FunnelNetwork(config: config, embeddingRows: 12, fields: 3, denseCount: 2, workers: 3, bagFields: bags,
                                  maxBagValues: 3, attention: plan)
        let whole = Batch(capacity: 10, fields: 3, denseCount: 2)
        [Int32](0..<10).withUnsafeBufferPointer { whole.fill(from: data, rows: $0) }
        let wholeLoss = single.computeGradients(whole, objective: objective)
        var shardLoss = 0.0
        for (w, range) in [(0, 0..<4), (1, 4..<8), (2, 8..<10)] {
            let b = Batch(capacity: 4, fields: 3, denseCount: 2)
            [Int32](range.map { Int32($0) }).withUnsafeBufferPointer { b.fill(from: data, rows: $0) }
            shardLoss += multi.computeGradients(b, objective: objective, worker: w, normalizer: 10)
        }
        multi.reduceGradients(for: objective, active: 3)
        XCTAssertEqual(shardLoss, wholeLoss, accuracy: 1e-6, name)
        var compared = 0
        for (p, q) in zip(single.parameters(for: objective), multi.parameters(for: objective)) {
            if p.isSparse {
                XCTAssertEqual(Set(p.touchedRows), Set(q.touchedRows), "\(name): \(p.name)")
                for (s, r) in p.touchedRows.enumerated() {
                    guard let t = q.touchedRows.firstIndex(of: r) else { continue }
                    for d in 0..<p.rowWidth {
                        XCTAssertEqual(p.rowGradients[s * p.rowWidth + d], q.rowGradients[t * p.rowWidth + d], accuracy: 1e-6, "\(name): \(p.name)")
                        compared += 1
                    }
                }
            } else {
                for i in 0..<p.count { XCTAssertEqual(p.grad[i], q.grad[i], accuracy: 1e-6, "\(name): \(p.name)[\(i)]") }
                compared += p.count
            }
        }
        XCTAssertGreaterThan(compared, 0, "\(name): no gradient was compared")
    }

    func testTwoWorkersAreDeterministicAndPredictLikeOne() throws {
        let data = randomDataset(rows: 900, fields: 4, vocab: 30, dense: 3, seed: 1, clickRate: 0.3)
        var config = ModelConfig(kind: .esmm)
        config.hidden = [16, 8]; config.embeddingDim = 4; config.batchSize = 128
        func train() throws -> FunnelNetwork {
            let net = FunnelNetwork(config: config, embeddingRows: 120, fields: 4, denseCount: 3, workers: 2)
            _ = try Trainer(config: config).train(net, on: data)
            return net
        }
        let a = try train(), b = try train()
        for (p, q) in zip(a.parameters, b.parameters) { XCTAssertEqual(p.value.array, q.value.array, p.name) }
        // Prediction splits rows over workers; it must match a one-worker copy of the same weights.
        let one = FunnelNetwork(config: config, embeddingRows: 120, fields: 4, denseCount: 3, maxBatch: 64, workers: 1)
        for (p, q) in zip(a.parameters, one.parameters) { q.value.base.update(from: p.value.base, count: p.count) }
        let pa = a.predict(data), po = one.predict(data)
        for i in 0..<data.rowCount {
            XCTAssertEqual(pa.ctr[i], po.ctr[i], accuracy: 1e-6)
            XCTAssertEqual(pa.cvr[i], po.cvr[i], accuracy: 1e-6)
        }
    }
}
