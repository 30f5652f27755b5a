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
    /// A data-parallel job's ranks: each computes its share of every global batch, the
    /// gradients are summed across ranks, every rank applies the same update. Nil: one process.
    public var communicator: Communicator
    /// Each stage's optimizer step count to start from (a continued run's `OptimizerState`);
    /// nil: every stage starts at step 0.
    public var startingSteps: [Int]?
    /// Batches of whole requests (`RequestBatches`) where the data has request keys; nil: when
    /// the network shares requests (`FunnelNetwork.requestSharing`).
    public var requestBatches: Bool?
    /// With request batches: at most this many impressions of one request per batch (nil: the
    /// whole request, up to the batch size).
    public var requestPieceRows: Int?
    /// Under mpirun: overlap the dense all-reduce with the embedding exchanges (false: one after
    /// the other, `--no-overlap-collectives`; the weights are the same either way).
    public var overlapCollectives = true

    /// The thread count is the network's worker count (`FunnelNetwork(workers:)`).
    public init(config: ModelConfig, communicator: Communicator = .single) {
        self.config = config
        self.communicator = communicator
    }

    public struct Result: Sendable {
        public var seconds: Double
        public var samples: Int
        public var finalLoss: [String: Double]
        /// The checkpoint schedule asked to stop before the last epoch ended.
        public var stoppedEarly = false
        /// Each stage's optimizer step count at the end (what `OptimizerState` saves).
        public var optimizerSteps: [Int] = []
        /// Requests longer than a batch, cut into pieces (request batches only).
        public var requestPiecesCut = 0
        public var samplesPerSecond: Double { seconds > 0 ? Double(samples) / seconds : 0 }
    }

    public func train(
        _ network: FunnelNetwork, on data: EncodedDataset,
        progress: ((TrainingProgress) -> Void)? = nil,
        afterEpoch: ((_ stage: Objective, _ epoch: Int) -> Void)? = nil,
        onlyStages: Set<Int>? = nil,
        checkpoints: CheckpointSchedule? = nil
    ) throws -> Result {
        try train(network, chunks: InMemoryChunks(data), progress: progress, afterEpoch: afterEpoch, onlyStages: onlyStages,
                  checkpoints: checkpoints)
    }

    /// Trains over a source of data chunks: each epoch of each stage walks the source's chunks
    /// (one chunk for data in memory; shuffle buffers of a streamed cache) and, within a chunk,
    /// the stage's rows in a seeded shuffled order. One Adam state per stage spans all chunks.
    public func train(
        _ network: FunnelNetwork, chunks source: TrainingChunks,
        progress: ((TrainingProgress) -> Void)? = nil,
        afterEpoch: ((_ stage: Objective, _ epoch: Int) -> Void)? = nil,
        onlyStages: Set<Int>? = nil,
        checkpoints: CheckpointSchedule? = nil
    ) throws -> Result {
        // Funnel's workers are the parallelism; OpenBLAS stays single-threaded inside each.
        BLAS.setThreads(1)
        let exchange = communicator.isDistributed ? GradientExchange(communicator: communicator) : nil
        exchange?.overlaps = overlapCollectives
        let run = TrainingRun(config: config, network: network, source: source, progress: progress, onlyStages: onlyStages,
                              exchange: exchange)
        run.requestBatches = requestBatches ?? (network.requestSharing != nil)
        run.requestPieceRows = requestPieceRows
        let stages = network.architecture.stages
        var stopped = false
        var steps = startingSteps ?? [Int](repeating: 0, count: stages.count)
        guard steps.count == stages.count else { throw FunnelError("optimizer state has \(steps.count) stage(s), the model \(stages.count)") }
        for (s, stage) in stages.enumerated() where onlyStages?.contains(s) ?? true {
            let optimizer = AdamOptimizer(
                learningRate: Float(config.learningRate), beta1: Float(config.beta1), beta2: Float(config.beta2),
                epsilon: Float(config.epsilon), l2: Float(config.l2), workers: network.workers)
            optimizer.step = steps[s]
            defer { steps[s] = optimizer.step }
            let params = network.parameters(for: stage.objective)
            let epochs = config.epochs(for: stage.space)
            let stepsPerEpoch = max(1, (run.stageWork[s] + config.batchSize - 1) / config.batchSize)
            let rates = LearningRatePlan(schedule: config.lrSchedule ?? .constant, base: config.learningRate,
                                         warmupSteps: config.warmupSteps ?? 0, gamma: config.lrGamma ?? 0.1,
                                         stepSize: config.lrStepSize ?? stepsPerEpoch, totalSteps: stepsPerEpoch * epochs)
            // Checkpoints (early stopping) watch the last stage: the one whose outputs are predicted.
            run.startStage(rates: rates, checkpoints: s == stages.count - 1 ? checkpoints : nil)
            // Data held in memory is one chunk whose row order carries over from epoch to epoch.
            var kept: (rows: [Int32], weights: [Float]?)?
            for epoch in 1...epochs {
                do {
                    try run.epoch(epoch, of: s, stage, optimizer: optimizer, parameters: params, kept: &kept)
                } catch is TrainingRun.Stop {
                    stopped = true
                    break
                }
                afterEpoch?(stage.objective, epoch)
                if run.checkpointAfterEpoch(epoch) { stopped = epoch < epochs; break }
            }
        }
        return Result(seconds: Date().timeIntervalSince(run.start), samples: run.samples, finalLoss: run.finalLoss,
                      stoppedEarly: stopped, optimizerSteps: steps, requestPiecesCut: run.requestPiecesCut)
    }

    /// The rows a stage iterates over, in data order (shuffled per epoch later).
    static func rows(of space: SampleSpace, in data: EncodedDataset, config: ModelConfig, stage: Int, stream: UInt64 = 0) -> [Int32] {
        guard let click = data.click, let conversion = data.conversion else { return [] }
        switch space {
        case .all:
            return (0..<data.rowCount).map { Int32($0) }
        case .clicked:
            return data.clickedRows
        case .clickedWithSampledNegatives:
            // AMAN: each unclicked impression joins as a CVR negative with probability negativeRate.
            var rng = RandomSource(seed: config.seed, stream: 20_000 + UInt64(stage) &+ stream)
            var out: [Int32] = []
            for i in 0..<data.rowCount where click[i] == 1 || rng.uniform() < config.negativeRate { out.append(Int32(i)) }
            return out
        case .clickedWithOversampledConversions:
            // OVERSAMPLING: every converted click appears `oversample` times in total.
            var out = data.clickedRows
            for _ in 1..<max(config.oversample, 1) {
                for i in 0..<data.rowCount where click[i] == 1 && conversion[i] == 1 { out.append(Int32(i)) }
            }
            return out
        }
    }

    /// UNBIAS: importance weights 1/max(pCTR, clip) from the already-trained CTR head, normalised
    /// to mean 1 over the stage's rows so the effective learning rate stays that of BASE.
    /// Clipping bounds the variance that a few tiny pCTRs would otherwise add. Indexed by data row.
    static func inverseCTRWeights(_ network: FunnelNetwork, data: EncodedDataset, rows: [Int32], clip: Double) throws -> [Float] {
        // A sharded run's label view has no features: each rank predicts its rows, the ranks share them.
        let pctr = try data.shard?.predictCTR(network, rows: rows) ?? network.predictCTRCollectively(data, rows: rows)
        var w = [Float](repeating: 1, count: data.rowCount)
        var sum = 0.0
        for (k, r) in rows.enumerated() {
            let v = 1 / max(Double(pctr[k]), clip)
            w[Int(r)] = Float(v)
            sum += v
        }
        let scale = Float(Double(rows.count) / max(sum, 1e-12))
        for r in rows { w[Int(r)] *= scale }
        return w
    }
}
