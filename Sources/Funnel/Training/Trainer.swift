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

    /// The thread count is the network's worker count (`FunnelNetwork(workers:)`).
    public init(config: ModelConfig) {
        self.config = config
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
        afterEpoch: ((_ stage: Objective, _ epoch: Int) -> Void)? = nil,
        onlyStages: Set<Int>? = nil
    ) throws -> Result {
        try train(network, chunks: InMemoryChunks(data), progress: progress, afterEpoch: afterEpoch, onlyStages: onlyStages)
    }

    /// Trains over a source of data chunks: each epoch of each stage walks the source's chunks
    /// (one chunk for data in memory; shuffle buffers of a streamed cache) and, within a chunk,
    /// the stage's rows in a seeded shuffled order. One Adam state per stage spans all chunks.
    public func train(
        _ network: FunnelNetwork, chunks source: TrainingChunks,
        progress: ((TrainingProgress) -> Void)? = nil,
        afterEpoch: ((_ stage: Objective, _ epoch: Int) -> Void)? = nil,
        onlyStages: Set<Int>? = nil
    ) throws -> Result {
        // Funnel's workers are the parallelism; OpenBLAS stays single-threaded inside each.
        BLAS.setThreads(1)
        let workers = network.workers
        let stages = network.architecture.stages
        let stageWork = stages.enumerated().map { s in
            onlyStages?.contains(s.offset) == false ? 0 : source.estimatedRows(of: s.element.space, config: config)
        }
        let totalWork = Double(zip(stages, stageWork).reduce(0) { $0 + $1.1 * config.epochs(for: $1.0.space) })
        let batches = (0..<workers).map { _ in
            Batch(capacity: network.maxBatch, fields: source.fields, denseCount: source.denseCount)
        }
        var shardLoss = [Double](repeating: 0, count: workers)
        var finalLoss: [String: Double] = [:]
        var samples = 0
        let start = Date()
        var workDone = 0.0
        var lastReport = Date.distantPast

        for (s, stage) in stages.enumerated() where onlyStages?.contains(s) ?? true {
            let objective = stage.objective
            let optimizer = AdamOptimizer(
                learningRate: Float(config.learningRate), beta1: Float(config.beta1), beta2: Float(config.beta2),
                epsilon: Float(config.epsilon), l2: Float(config.l2), workers: workers)
            let params = network.parameters(for: objective)
            let epochs = config.epochs(for: stage.space)
            // Data held in memory is one chunk whose row order carries over from epoch to epoch.
            var kept: (rows: [Int32], weights: [Float]?)?
            for epoch in 1...epochs {
                var lossSum = 0.0, lossRows = 0, epochRows = 0
                var chunkIndex = 0
                try source.forEachChunk(epoch: epoch, stage: s, seed: config.seed) { data in
                    guard data.hasLabels else { throw FunnelError("training data has no labels") }
                    defer { chunkIndex += 1 }
                    // Chunk 0 uses the streams an in-memory run always used.
                    let chunkStream = UInt64(chunkIndex) &* 1_000_003
                    var rows: [Int32], rowWeights: [Float]?
                    if source.isSingleChunk, let k = kept {
                        (rows, rowWeights) = k
                    } else {
                        rows = Trainer.rows(of: stage.space, in: data, config: config, stage: s, stream: chunkStream)
                        rowWeights = stage.weighting == .inverseCTR && !rows.isEmpty
                            ? Trainer.inverseCTRWeights(network, data: data, rows: rows, clip: config.unbiasClip) : nil
                    }
                    defer { if source.isSingleChunk { kept = (rows, rowWeights) } }
                    guard !rows.isEmpty else { return }
                    if config.shuffle {
                        var rng = RandomSource(seed: config.seed, stream: 10_000 + UInt64(s) * 1_000 + UInt64(epoch) &+ chunkStream)
                        rng.shuffle(&rows)
                    }
                    var offset = 0
                    while offset < rows.count {
                        let n = min(config.batchSize, rows.count - offset)
                        // Compute gradients: each worker takes a contiguous shard of the batch.
                        let shard = (n + workers - 1) / workers
                        let active = (n + shard - 1) / shard
                        rows.withUnsafeBufferPointer { b in
                            let base = offset
                            Parallel.forEach(active) { w in
                                let lo = base + w * shard, hi = min(base + n, lo + shard)
                                let batch = batches[w]
                                batch.fill(from: data, rows: UnsafeBufferPointer(rebasing: b[lo..<hi]), rowWeights: rowWeights)
                                shardLoss[w] = network.computeGradients(batch, objective: objective, worker: w, normalizer: n)
                            }
                        }
                        // Reduce (across threads here; across processes in a data-parallel run), then apply.
                        network.reduceGradients(for: objective, active: active)
                        optimizer.apply(params)
                        let loss = shardLoss[0..<active].reduce(0, +)
                        guard loss.isFinite else {
                            throw FunnelError("training diverged: loss is \(loss) at stage '\(objective.rawValue)', epoch \(epoch), row \(epochRows + offset); try a smaller learning rate")
                        }
                        lossSum += loss * Double(n)
                        lossRows += n
                        offset += n
                        samples += n
                        workDone += Double(n)
                        let now = Date()
                        if let progress, now.timeIntervalSince(lastReport) >= 0.25 {
                            lastReport = now
                            let elapsed = now.timeIntervalSince(start)
                            let rate = elapsed > 0 ? workDone / elapsed : 0
                            progress(TrainingProgress(
                                stage: objective, stageIndex: s, stageCount: stages.count, epoch: epoch,
                                epochs: epochs, rowsDone: epochRows + offset, rowsInEpoch: max(stageWork[s], epochRows + offset),
                                meanLoss: lossSum / Double(lossRows), rowsPerSecond: rate,
                                secondsLeft: rate > 0 ? max(0, totalWork - workDone) / rate : 0,
                                epochFinished: false))
                        }
                    }
                    epochRows += rows.count
                }
                guard lossRows > 0 else {
                    throw FunnelError("stage '\(objective.rawValue)' has no training rows (no clicked impressions in the training data)")
                }
                if let progress {
                    let elapsed = Date().timeIntervalSince(start)
                    let rate = elapsed > 0 ? workDone / elapsed : 0
                    progress(TrainingProgress(
                        stage: objective, stageIndex: s, stageCount: stages.count, epoch: epoch, epochs: epochs,
                        rowsDone: epochRows, rowsInEpoch: epochRows, meanLoss: lossSum / Double(lossRows), rowsPerSecond: rate,
                        secondsLeft: rate > 0 ? max(0, totalWork - workDone) / rate : 0, epochFinished: true))
                }
                finalLoss[objective.rawValue] = lossSum / Double(max(lossRows, 1))
                afterEpoch?(objective, epoch)
            }
        }
        return Result(seconds: Date().timeIntervalSince(start), samples: samples, finalLoss: finalLoss)
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
    static func inverseCTRWeights(_ network: FunnelNetwork, data: EncodedDataset, rows: [Int32], clip: Double) -> [Float] {
        let pctr = network.predictCTR(data, rows: rows)
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
