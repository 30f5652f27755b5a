import Foundation

/// The state of one `Trainer.train` call: the workers' batches, counters for progress and the
/// loss summary, and the epoch → chunk → step loop. Each step is *compute gradients* (workers
/// on contiguous shards of the batch) → *reduce* → *apply* (Adam).
final class TrainingRun {
    let config: ModelConfig
    let network: FunnelNetwork
    let source: TrainingChunks
    let progress: ((TrainingProgress) -> Void)?
    let batches: [Batch]
    /// Rows each stage visits per epoch (0 for stages not trained), for progress and the ETA.
    let stageWork: [Int]
    let totalWork: Double
    let start = Date()
    private(set) var samples = 0
    private(set) var finalLoss: [String: Double] = [:]
    private var shardLoss: [Double]
    private var workDone = 0.0
    private var lastReport = Date.distantPast
    /// The stage in progress: its optimizer steps so far, learning rates and checkpoints.
    private var stageStep = 0
    private var rates: LearningRatePlan?
    private var checkpoints: CheckpointSchedule?

    /// Thrown out of the step loop when a checkpoint asks to stop.
    struct Stop: Error {}

    func startStage(rates: LearningRatePlan, checkpoints: CheckpointSchedule?) {
        stageStep = 0
        self.rates = rates.isActive ? rates : nil
        self.checkpoints = checkpoints
    }

    /// The end-of-epoch checkpoint (when checkpoints are not every N steps); true: stop.
    func checkpointAfterEpoch(_ epoch: Int) -> Bool {
        guard let c = checkpoints, c.everySteps == nil else { return false }
        return c.evaluate(epoch, stageStep)
    }

    /// The cross-rank reduce of a data-parallel job (nil: one process).
    let exchange: GradientExchange?
    /// Batches of whole requests where the data carries request keys (`RequestBatches`).
    var requestBatches = false
    var requestPieceRows: Int?
    /// Requests longer than a batch, cut into pieces (summed over chunks, stages and epochs).
    private(set) var requestPiecesCut = 0

    init(config: ModelConfig, network: FunnelNetwork, source: TrainingChunks, progress: ((TrainingProgress) -> Void)?,
         onlyStages: Set<Int>?, exchange: GradientExchange? = nil) {
        self.config = config
        self.exchange = exchange
        self.network = network
        self.source = source
        self.progress = progress
        let stages = network.architecture.stages
        stageWork = stages.enumerated().map { s in
            onlyStages?.contains(s.offset) == false ? 0 : source.estimatedRows(of: s.element.space, config: config)
        }
        totalWork = Double(zip(stages, stageWork).reduce(0) { $0 + $1.1 * config.epochs(for: $1.0.space) })
        batches = (0..<network.workers).map { _ in
            Batch(capacity: network.maxBatch, fields: source.fields, denseCount: source.denseCount, sharing: network.requestSharing)
        }
        shardLoss = [Double](repeating: 0, count: network.workers)
    }

    /// Loss totals of the epoch in progress.
    private struct EpochLoss {
        var sum = 0.0, rows = 0, epochRows = 0
    }

    /// One epoch of stage `s` over every chunk of the source.
    func epoch(_ epoch: Int, of s: Int, _ stage: Stage, optimizer: AdamOptimizer, parameters: [Parameter],
               kept: inout (rows: [Int32], weights: [Float]?)?) throws {
        var loss = EpochLoss()
        var chunkIndex = 0
        var carried = kept
        defer { if loss.rows > 0 { finalLoss[stage.objective.rawValue] = loss.sum / Double(loss.rows) } }
        try source.forEachChunk(epoch: epoch, stage: s, seed: config.seed) { data in
            guard data.hasLabels else { throw FunnelError("training data has no labels") }
            defer { chunkIndex += 1 }
            // Chunk 0 uses the streams an in-memory run always used.
            let chunkStream = UInt64(chunkIndex) &* 1_000_003
            var (rows, rowWeights) = source.isSingleChunk && carried != nil ? carried!
                : try stageRows(stage, s, in: data, stream: chunkStream)
            // In memory the next epoch shuffles on from this epoch's order (the shuffled rows).
            defer { if source.isSingleChunk { carried = (rows, rowWeights) } }
            guard !rows.isEmpty else { return }
            var rng = RandomSource(seed: config.seed, stream: 10_000 + UInt64(s) * 1_000 + UInt64(epoch) &+ chunkStream)
            var ends: [Int]?
            if requestBatches, let keys = data.requests?.keys {
                let arranged = RequestBatches(rows, keys: keys, batchSize: config.batchSize, pieceRows: requestPieceRows,
                                              shuffle: config.shuffle, rng: &rng)
                (rows, ends) = (arranged.rows, arranged.ends)
                requestPiecesCut += arranged.piecesCut
            } else if config.shuffle {
                rng.shuffle(&rows)
            }
            try steps(over: rows, ends: ends, weights: rowWeights, of: data, stage: stage, s: s, epoch: epoch, optimizer: optimizer,
                      parameters: parameters, loss: &loss)
            loss.epochRows += rows.count
        }
        kept = carried
        guard loss.rows > 0 else {
            throw FunnelError("stage '\(stage.objective.rawValue)' has no training rows (no clicked impressions in the training data)")
        }
        report(stage.objective, s, epoch, rowsDone: loss.epochRows, rowsInEpoch: loss.epochRows, meanLoss: loss.sum / Double(loss.rows),
               finished: true)
    }

    /// The rows of a stage's space in one chunk, with UNBIAS's weights where the stage has them.
    private func stageRows(_ stage: Stage, _ s: Int, in data: EncodedDataset, stream: UInt64) throws -> ([Int32], [Float]?) {
        let rows = Trainer.rows(of: stage.space, in: data, config: config, stage: s, stream: stream)
        let weights = stage.weighting == .inverseCTR && !rows.isEmpty
            ? try Trainer.inverseCTRWeights(network, data: data, rows: rows, clip: config.unbiasClip) : nil
        return (rows, weights)
    }

    /// The optimizer steps over one chunk's (shuffled) rows, a batch at a time (batches ending at
    /// `ends` when given, else every `batchSize` rows).
    private func steps(over rows: [Int32], ends: [Int]?, weights rowWeights: [Float]?, of data: EncodedDataset, stage: Stage, s: Int,
                       epoch: Int, optimizer: AdamOptimizer, parameters: [Parameter], loss: inout EpochLoss) throws {
        let objective = stage.objective
        // A sharded run fills batches from this rank's rows: the row weights go along, re-indexed.
        var localWeights: [Float]?
        if let shard = data.shard, let rowWeights {
            var w = [Float](repeating: 1, count: shard.local.rowCount)
            for (g, l) in shard.localIndex.enumerated() where l >= 0 { w[Int(l)] = rowWeights[g] }
            localWeights = w
        }
        var offset = 0, batchIndex = 0
        while offset < rows.count {
            let n = ends.map { $0[batchIndex] - offset } ?? min(config.batchSize, rows.count - offset)
            batchIndex += 1
            let l = try step(rows, offset: offset, count: n, weights: data.shard == nil ? rowWeights : localWeights, of: data,
                             objective: objective, optimizer: optimizer, parameters: parameters)
            guard l.isFinite else {
                throw FunnelError("training diverged: loss is \(l) at stage '\(objective.rawValue)', epoch \(epoch), "
                                  + "row \(loss.epochRows + offset); try a smaller learning rate")
            }
            loss.sum += l * Double(n)
            loss.rows += n
            offset += n
            samples += n
            workDone += Double(n)
            if let c = checkpoints, let every = c.everySteps, stageStep % every == 0, c.evaluate(epoch, stageStep) { throw Stop() }
            if progress != nil, Date().timeIntervalSince(lastReport) >= 0.25 {
                lastReport = Date()
                report(objective, s, epoch, rowsDone: loss.epochRows + offset,
                       rowsInEpoch: max(stageWork[s], loss.epochRows + offset), meanLoss: loss.sum / Double(loss.rows), finished: false)
            }
        }
    }

    /// One step on `rows[offset..<offset+n]`: compute gradients (each worker a contiguous shard;
    /// in a data-parallel job, each rank first takes its contiguous share of the batch), reduce
    /// (across threads, then across ranks), apply. Returns the batch's mean loss.
    private func step(_ rows: [Int32], offset: Int, count n: Int, weights rowWeights: [Float]?, of data: EncodedDataset,
                      objective: Objective, optimizer: AdamOptimizer, parameters: [Parameter]) throws -> Double {
        // This process's rows of the batch: all of them; a rank's contiguous share when every rank
        // holds the data; a rank's own rows (as local indices) in a sharded run.
        var mine = rows, lo = offset, local = n, source = data
        if let shardView = data.shard {
            mine = []
            for g in rows[offset..<(offset + n)] where shardView.localIndex[Int(g)] >= 0 { mine.append(shardView.localIndex[Int(g)]) }
            (lo, local, source) = (0, mine.count, shardView.local)
        } else if let exchange {
            let ranks = exchange.communicator.size, share = (n + ranks - 1) / ranks
            lo = offset + min(n, exchange.communicator.rank * share)
            local = min(offset + n, lo + share) - lo
        }
        let shard = max(1, (local + network.workers - 1) / network.workers)
        let active = (local + shard - 1) / shard
        let network = self.network, batches = self.batches
        let sharded = network.sharded
        try shardLoss.withUnsafeMutableBufferPointer { losses in
            let lossesOut = losses.baseAddress!
            try mine.withUnsafeBufferPointer { b in
                func fill(_ w: Int) {
                    let from = lo + w * shard, to = min(lo + local, from + shard)
                    batches[w].fill(from: source, rows: UnsafeBufferPointer(rebasing: b[from..<to]), rowWeights: rowWeights)
                }
                // Row-sharded tables: every worker's batch is filled first, then the rank's rows
                // are fetched from their owners at once (a collective) before any worker computes.
                if let sharded {
                    Parallel.forEach(active) { fill($0) }
                    try sharded.prepare(batches[0..<active])
                }
                // A data-parallel job stops before the embeddings' backward (`reduceAcrossRanks`).
                let exchanging = exchange != nil
                Parallel.forEach(active) { w in
                    if sharded == nil { fill(w) }
                    lossesOut[w] = exchanging ? network.computeTowerGradients(batches[w], objective: objective, worker: w, normalizer: n)
                        : network.computeGradients(batches[w], objective: objective, worker: w, normalizer: n)
                }
            }
        }
        var loss = shardLoss[0..<active].reduce(0, +)
        if let exchange {
            loss = try reduceAcrossRanks(exchange, objective: objective, active: active, parameters: parameters, loss: loss)
        } else {
            network.reduceGradients(for: objective, active: active)
        }
        // A non-finite loss (every rank sees the same, reduced) is never applied: the caller
        // ends the run naming the stage, and no NaN reaches the weights.
        guard loss.isFinite else { return loss }
        if let rates { optimizer.learningRate = Float(rates.rate(at: stageStep)) }
        optimizer.apply(parameters)
        stageStep += 1
        return loss
    }

    /// A data-parallel step's reduce, the towers first: their gradients (final once the bodies'
    /// backward ran) are summed over the workers and their all-reduce started, with the loss;
    /// the embeddings' backward (cross layers, attention units, rows) runs while it is in flight,
    /// then its gradients go across (dense ones all-reduced, rows all-gathered or, row-sharded,
    /// sent to their owners) and the towers' all-reduce is waited for last. Returns the summed loss.
    private func reduceAcrossRanks(_ exchange: GradientExchange, objective: Objective, active: Int, parameters: [Parameter],
                                   loss: Double) throws -> Double {
        let towers = network.towerParameters(for: objective), inputs = network.inputParameters(for: objective)
        // This rank's share of a batch smaller than the job is empty: it adds nothing.
        func zero(_ params: [Parameter]) {
            for p in params {
                if p.isSparse { p.touchedRows = [] } else { p.grad.base.update(repeating: 0, count: p.count) }
            }
        }
        if active > 0 { network.reduceGradients(of: towers, active: active) } else { zero(towers) }
        try exchange.startTowers(towers, loss: loss)
        if active > 0 {
            let network = self.network, batches = self.batches
            Parallel.forEach(active) { w in network.computeInputGradients(batches[w], objective: objective, worker: w) }
            network.reduceGradients(of: inputs, active: active)
        } else {
            zero(inputs)
        }
        let sharded = network.sharded
        return try exchange.finish(inputs.filter { !(sharded?.owns($0) ?? false) }) {
            try sharded?.reduce(active: active > 0, training: parameters)
        }
    }

    private func report(_ objective: Objective, _ s: Int, _ epoch: Int, rowsDone: Int, rowsInEpoch: Int, meanLoss: Double,
                        finished: Bool) {
        guard let progress else { return }
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? workDone / elapsed : 0
        progress(TrainingProgress(
            stage: objective, stageIndex: s, stageCount: network.architecture.stages.count, epoch: epoch,
            epochs: config.epochs(for: network.architecture.stages[s].space), rowsDone: rowsDone, rowsInEpoch: rowsInEpoch,
            meanLoss: meanLoss, rowsPerSecond: rate, secondsLeft: rate > 0 ? max(0, totalWork - workDone) / rate : 0,
            epochFinished: finished))
    }
}
