import Foundation

/// Where training is, for progress displays.
public struct TrainingProgress: Sendable {
    public var stage: Objective
    public var stageIndex: Int
    public var stageCount: Int
    public var epoch: Int
    public var epochs: Int
    public var rowsDone: Int
    public var rowsInEpoch: Int
    public var meanLoss: Double
    public var rowsPerSecond: Double
    /// Estimated seconds left for the whole run.
    public var secondsLeft: Double
    public var epochFinished: Bool
}

/// Runs a network's stages over a data set: shuffle per epoch, batch, compute gradients,
/// apply Adam. Deterministic for a fixed seed and thread count.
public final class Trainer {
    public let config: ModelConfig
    public let threads: Int

    public init(config: ModelConfig, threads: Int) {
        self.config = config
        self.threads = threads
    }

    public struct Result: Sendable {
        public var seconds: Double
        public var samples: Int
        public var finalLoss: [String: Double]
        public var samplesPerSecond: Double { seconds > 0 ? Double(samples) / seconds : 0 }
    }

    public func train(
        _ network: FunnelNetwork, on data: EncodedDataset,
        progress: ((TrainingProgress) -> Void)? = nil,
        afterEpoch: ((_ stage: Objective, _ epoch: Int) -> Void)? = nil
    ) throws -> Result {
        guard data.hasLabels else { throw FunnelError("training data has no labels") }
        BLAS.setThreads(threads)
        let stages = network.architecture.stages
        let allRows = (0..<data.rowCount).map { Int32($0) }
        let clicked = data.clickedRows
        let stageRows = stages.map { $0.space == .allImpressions ? allRows : clicked }
        let totalWork = Double(stageRows.reduce(0) { $0 + $1.count } * config.epochs)
        let batch = Batch(capacity: config.batchSize, fields: data.fields, denseCount: data.denseCount)
        var finalLoss: [String: Double] = [:]
        var samples = 0
        let start = Date()
        var workDone = 0.0
        var lastReport = Date.distantPast

        for (s, objective) in stages.enumerated() {
            var rows = stageRows[s]
            guard !rows.isEmpty else {
                throw FunnelError("stage '\(objective.rawValue)' has no training rows (no clicked impressions in the training data)")
            }
            let optimizer = AdamOptimizer(
                learningRate: Float(config.learningRate), beta1: Float(config.beta1), beta2: Float(config.beta2),
                epsilon: Float(config.epsilon), l2: Float(config.l2))
            let params = network.parameters(for: objective)
            for epoch in 1...config.epochs {
                var rng = RandomSource(seed: config.seed, stream: 10_000 + UInt64(s) * 1_000 + UInt64(epoch))
                rng.shuffle(&rows)
                var lossSum = 0.0, lossRows = 0
                var offset = 0
                while offset < rows.count {
                    let n = min(config.batchSize, rows.count - offset)
                    rows.withUnsafeBufferPointer { b in
                        batch.fill(from: data, rows: UnsafeBufferPointer(rebasing: b[offset..<(offset + n)]))
                    }
                    let loss = network.computeGradients(batch, objective: objective)
                    // (A data-parallel run reduces the gradients across workers here.)
                    optimizer.apply(params)
                    guard loss.isFinite else {
                        throw FunnelError("training diverged: loss is \(loss) at stage '\(objective.rawValue)', epoch \(epoch), row \(offset); try a smaller --lr")
                    }
                    lossSum += loss * Double(n)
                    lossRows += n
                    offset += n
                    samples += n
                    workDone += Double(n)
                    let now = Date()
                    if let progress, now.timeIntervalSince(lastReport) >= 0.25 || offset == rows.count {
                        lastReport = now
                        let elapsed = now.timeIntervalSince(start)
                        let rate = elapsed > 0 ? workDone / elapsed : 0
                        progress(TrainingProgress(
                            stage: objective, stageIndex: s, stageCount: stages.count, epoch: epoch,
                            epochs: config.epochs, rowsDone: offset, rowsInEpoch: rows.count,
                            meanLoss: lossSum / Double(lossRows), rowsPerSecond: rate,
                            secondsLeft: rate > 0 ? (totalWork - workDone) / rate : 0,
                            epochFinished: offset == rows.count))
                    }
                }
                finalLoss[objective.rawValue] = lossSum / Double(max(lossRows, 1))
                afterEpoch?(objective, epoch)
            }
        }
        return Result(seconds: Date().timeIntervalSince(start), samples: samples, finalLoss: finalLoss)
    }
}
