import Foundation
@testable import Funnel

/// The small simulated funnels and models the server tests serve.
enum TinyModels {
    /// `rows` simulated impressions (train.csv, test.csv and their truths) written into `dir`.
    static func simulate(into dir: String, rows: Int, seed: UInt64) throws {
        var c = SimulatorConfig()
        c.rows = rows; c.seed = seed; c.vocabScale = 0.02
        _ = try FunnelSimulator(config: c).write(to: dir)
    }

    /// A `kind` model (embedding 4, towers `hidden`) trained on `dir/train.csv`, saved to `out`.
    static func train(_ kind: ModelKind, hidden: [Int], on dir: String, to out: String) throws {
        let (schema, data, _) = try DatasetLoader.loadForTraining(dir + "/train.csv", options: ReadOptions(), minCount: 1)
        var config = ModelConfig(kind: kind)
        config.hidden = hidden; config.embeddingDim = 4; config.batchSize = 256
        let net = try FunnelNetwork(config: config, schema: schema)
        _ = try Trainer(config: config).train(net, on: data)
        try TrainedModel(config: config, schema: schema, network: net, training: nil).save(to: out)
    }
}
