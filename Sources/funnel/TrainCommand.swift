import ArgumentParser
import Foundation
import Funnel

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model and save it as a model directory.")

    @Option(help: "Training CSV/TSV with a header, a `funnel prepare` cache, or a file in PaddleRec's Ali-CCP layout.") var train: String
    @Option(help: "Optional validation file, evaluated after each epoch (or every --eval-every steps) of the last stage.")
    var valid: String?
    @Option(parsing: .unconditional, help: "Early stopping: stop after this many evaluations of --valid without improvement of --monitor and keep the best weights (--epochs becomes the maximum).")
    var earlyStopping: Int?
    @Option(help: "The metric early stopping watches (a metric key; lower- or higher-is-better is known).")
    var monitor: MetricKey = .loglossCTCVR
    @Option(parsing: .unconditional, help: "Evaluate --valid every this many optimizer steps of the last stage instead of after every epoch.")
    var evalEvery: Int?
    @Option(help: "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")) (with --init-from: the saved model's).")
    var model: ModelKind?
    @Option(help: "Output model directory.") var out: String
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var collective: CollectiveOptions
    @Option(parsing: .unconditional, help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(parsing: .unconditional, help: "Random seed (initialisation and shuffling) (default: 42).", transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64 = 42
    @Option(parsing: .unconditional, help: "Threads (default: all cores).") var threads: Int?
    @OptionGroup var gemmOptions: GEMMOptions
    @Option(help: "Continue this model directory on the training file: its model and settings (flags given override training settings; shapes cannot change), its weights, its vocabularies grown by the file's new ids, and Adam's state when it was saved with --save-optimizer-state.")
    var initFrom: String?
    @Flag(help: "Save Adam's moments and step counts in the model directory (optimizer.safetensors), so a later --init-from continues as if training had not stopped.")
    var saveOptimizerState = false
    @Flag(help: "With --init-from: also write OUT/delta/ — the rows that changed or appeared, the dense weights, the vocabularies — which `funnel serve --watch` applies to the model it serves (--init-from's) instead of loading OUT whole.")
    var delta = false
    @Option(help: "Stream a `funnel prepare` cache through a shuffle buffer sized to keep peak RSS under this many MiB.")
    var memoryBudget: Double?
    @Option(parsing: .unconditional, help: "With --memory-budget: shuffle buffers of exactly this many rows instead of what the budget allows (the same buffers for any rank count).")
    var shuffleBufferRows: Int?
    @Flag(help: "With --memory-budget: read each shuffle buffer after the last one has trained, on the training thread (default, in one process: the next buffer is read on a second thread while this one trains — the same buffers and weights).")
    var noPrefetchBuffers = false
    @Option(parsing: .unconditional, help: "Request sharing: at most this many impressions of one request per training batch (default: the whole request). Smaller pieces share less but give each user more optimizer steps per epoch.")
    var requestPieceRows: Int?
    @OptionGroup var data: DataOptions
    @OptionGroup var vocabulary: VocabularyOptions
    @Flag(help: "Print one JSON object with the training summary instead of text.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false
    @Option(help: "Under mpirun: how the ranks hold the embedding tables — replicated (a whole copy and its Adam state on every rank), row (each table's rows dealt over the ranks, fetched and updated by their owners each step), or auto (row for tables over --shard-threshold-mb with their optimizer state). One process holds its tables whole (row is an error there).")
    var embeddingSharding: EmbeddingShardingMode = .auto
    @Option(parsing: .unconditional, help: "With --embedding-sharding auto: tables larger than this many MiB (rows × dimensions × 3 floats: the value and Adam's two moments) are row-sharded.")
    var shardThresholdMb = 64.0
    @Option(help: "How the model directory holds row-sharded tables: whole (one weights.safetensors, gathered on rank 0), sharded (weights-0000K-of-0000N.safetensors, one per rank's rows, with weights.index.json; no rank holds a whole table), or auto (whole when rank 0 can gather the tables within its budget). predict, eval, serve, export and --init-from read both.")
    var weightsLayout: WeightsLayout = .auto
    @Flag(inversion: .prefixedNo, help: "Under mpirun: start the dense gradients' all-reduce before the embedding exchanges and wait for it after them, so they overlap (the weights are the same either way; --no-overlap-collectives runs them one after the other, to measure the difference).")
    var overlapCollectives = true
    @Flag(help: "Data-parallel training under mpirun (detected by itself there; with this flag, running outside mpirun is an error). Each rank reads its shard of the rows and computes its rows of every global batch; the gradients are summed over the ranks; rank 0 writes the model.")
    var distributed = false

    func validate() throws {
        guard minCount >= 1 else { throw ValidationError("--min-count must be ≥ 1") }
        guard model != nil || initFrom != nil else { throw ValidationError("Missing expected argument '--model <model>'") }
        if let k = earlyStopping {
            guard k >= 1 else { throw ValidationError("--early-stopping must be ≥ 1") }
            guard valid != nil else { throw ValidationError("--early-stopping needs --valid") }
        }
        if let n = evalEvery {
            guard n >= 1 else { throw ValidationError("--eval-every must be ≥ 1") }
            guard valid != nil else { throw ValidationError("--eval-every needs --valid") }
        }
        try validateThreads(threads)
        if let n = requestPieceRows, n < 1 { throw ValidationError("--request-piece-rows must be ≥ 1") }
        if let n = shuffleBufferRows {
            guard n >= 1 else { throw ValidationError("--shuffle-buffer-rows must be ≥ 1") }
            guard memoryBudget != nil else { throw ValidationError("--shuffle-buffer-rows needs --memory-budget (it sizes a streamed cache's buffers)") }
        }
        guard shardThresholdMb >= 0, shardThresholdMb.isFinite else { throw ValidationError("--shard-threshold-mb must be a number of MiB, 0 or more") }
        if let memoryBudget { guard memoryBudget > 0, memoryBudget.isFinite else { throw ValidationError("--memory-budget must be a positive number of MiB") } }
    }

    func run() throws {
        collective.apply()
        try runRanks(explicit: distributed) { try trainHere($0, quiet: $1) }
    }

    /// The model configuration and vocabulary minimum count: from the flags, or, continuing a
    /// model, from its `model.json` with the flags given overriding training settings.
    private func configAndMinCount() throws -> (ModelConfig, Int) {
        guard let initFrom else { return (try modelOptions.config(kind: model!, seed: seed), minCount) }
        let prev = try TrainedModel.manifest(in: initFrom)
        let given = ModelOptions.givenFlags()
        let config = try modelOptions.continuedConfig(from: prev.config, kind: model, seed: seed, given: given)
        return (config, given.contains("--min-count") ? minCount : prev.schema.minCount)
    }

    /// What this command asks of `TrainingJob`.
    private func request(_ comm: Communicator) throws -> TrainingRequest {
        let (config, minCount) = try configAndMinCount()
        var request = TrainingRequest(train: train, out: out, config: config)
        request.gemm = gemmOptions.settings
        request.communicator = comm
        request.valid = valid
        request.minCount = minCount
        (request.saveOptimizerState, request.writeDelta) = (saveOptimizerState, delta)
        request.threads = try resolveThreads(threads)
        (request.initFrom, request.memoryBudgetMiB) = (initFrom, memoryBudget)
        (request.shuffleBufferRows, request.prefetchBuffers) = (shuffleBufferRows, !noPrefetchBuffers)
        request.read = try data.readOptions()
        request.requestSharing = !data.noRequestSharing
        request.requestPieceRows = requestPieceRows
        (request.embeddingSharding, request.shardThresholdMiB, request.weightsLayout) = (embeddingSharding, shardThresholdMb, weightsLayout)
        request.overlapCollectives = overlapCollectives
        let previousPolicy = try initFrom.map { try TrainedModel.manifest(in: $0).schema.vocabularyPolicy } ?? nil
        request.read.vocabularyPolicy = try vocabulary.policy(previous: previousPolicy)
        request.read.dayColumn = request.read.vocabularyPolicy?.dayColumn
        request.force = force
        request.earlyStopping = earlyStopping
        request.monitor = monitor
        request.evalEverySteps = evalEvery
        return request
    }

    /// One rank's (or the lone process's) run; ranks other than 0 print nothing.
    private func trainHere(_ comm: Communicator, quiet: Bool) throws {
        let request = try request(comm)
        let config = request.config
        let kind = config.kind.rawValue, json = self.json, monitor = self.monitor
        let outcome = try TrainingJob.run(request) { event in
            guard !json && !quiet else { return }
            switch event {
            case .note(let n): Terminal.note(n)
            case .progress(let p):
                Terminal.progress("[\(kind) \(p.stage.rawValue)] epoch \(p.epoch)/\(p.epochs)  "
                                  + "\(p.rowsDone)/\(p.rowsInEpoch) rows  \(Terminal.rate(p.rowsPerSecond)) rows/s  "
                                  + String(format: "loss %.5f", p.meanLoss) + "  ETA \(Terminal.duration(p.secondsLeft))",
                                  final: p.epochFinished)
            case .validated(let epoch, let step, let r):
                Terminal.note("valid at epoch \(epoch), step \(step): AUC ctr \(EvaluationReport.format(r.aucCTR)) "
                              + "cvr \(EvaluationReport.format(r.aucCVR)) ctcvr \(EvaluationReport.format(r.aucCTCVR))  "
                              + "\(monitor.rawValue) \(EvaluationReport.format(r[monitor]))")
            }
        }
        let summary = outcome.summary
        if quiet { return }
        if json {
            try Terminal.printJSON(TrainOutput(model: kind, out: out, summary: summary,
                                           valid: outcome.best?.metrics ?? outcome.validation.last,
                                           memoryBudget: memoryBudget, bufferRows: outcome.bufferRows, columns: outcome.layout,
                                           best: outcome.best, stoppedEarly: valid == nil ? nil : outcome.stoppedEarly,
                                           distributed: outcome.communication, gemm: gemmOptions.settings.engine,
                                           precision: gemmOptions.settings.precision, continued: outcome.continued,
                                           tableRows: outcome.tableRows, requestSharing: outcome.requestSharing,
                                           sharding: outcome.sharding))
        } else {
            if let b = outcome.best {
                try Terminal.say("kept the best checkpoint: epoch \(b.epoch), step \(b.step), \(b.monitor.rawValue) \(EvaluationReport.format(b.value))"
                      + (outcome.stoppedEarly ? " (stopped early)" : ""))
            }
            let ranks = outcome.communication.map { " × \($0.ranks) ranks" } ?? ""
            try Terminal.say("trained \(kind) on \(summary.rows) rows in \(Terminal.duration(summary.seconds)) "
                  + "(\(Terminal.rate(summary.trainSamplesPerSecond)) samples/s, \(summary.threads) thread(s)\(ranks)); saved to \(out)")
            if let c = outcome.communication {
                try Terminal.say(String(format: "communication: %.1f KB dense + %.1f KB sparse sent per step by rank 0, %.1f s in collectives",
                             c.denseBytesPerStep / 1e3, c.sparseBytesPerStep / 1e3, c.seconds))
            }
            if let s = outcome.sharding, !s.tablesSharded.isEmpty {
                try Terminal.say("embedding tables row-sharded: " + s.embeddingBytesPerRank.map { String(format: "%.0f", Double($0) / 1_048_576) }
                    .joined(separator: " / ") + " MiB per rank (with Adam's state)")
            }
            if let budget = memoryBudget {
                let peak = ResourceUsage.peakRSSMegabytes
                try Terminal.say(String(format: "peak RSS %.0f MiB (budget %.0f MiB)%@", peak, budget, peak > budget ? " — over budget" : ""))
            }
        }
    }
}

struct TrainOutput: Encodable {
    var model: String
    var out: String
    var summary: TrainingSummary
    var valid: EvaluationReport?
    var memoryBudget: Double? = nil
    var bufferRows: Int? = nil
    /// The inferred (or declared) column roles.
    var columns: TableLayout? = nil
    var best: Checkpoint? = nil
    var stoppedEarly: Bool? = nil
    var distributed: CommunicationStats? = nil
    /// The GEMM engine the run used (`--gemm`).
    var gemm = GEMMSettings.standard.engine
    var precision = GEMMSettings.standard.precision
    /// `--init-from`: the embedding rows kept and added, and whether Adam's state carried over.
    var continued: ModelContinuation.Growth? = nil
    /// Embedding rows per categorical field of the saved model.
    var tableRows: [String: Int] = [:]
    /// Where the data has requests: what was computed once per request, what fell back.
    var requestSharing: RequestSharingReport? = nil
    /// Under mpirun: how the tables were held (replicated or row-sharded), bytes per rank and per step.
    var sharding: ShardingReport? = nil

    enum CodingKeys: String, CodingKey {
        case continued, tableRows = "table_rows", requestSharing = "request_sharing", sharding
        case model, out, valid, rows, clicks, conversions, epochs, threads, seconds, columns, best, distributed, gemm, precision
        case stoppedEarly = "stopped_early"
        case memoryBudget = "memory_budget_mb", bufferRows = "shuffle_buffer_rows"
        case trainSamplesPerSecond = "train_samples_per_second"
        case finalLoss = "final_loss"
        case readNotes = "read_notes"
        case peakRSS = "peak_rss_mb"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(out, forKey: .out)
        try c.encodeIfPresent(valid, forKey: .valid)
        try c.encodeIfPresent(memoryBudget, forKey: .memoryBudget)
        try c.encodeIfPresent(bufferRows, forKey: .bufferRows)
        try c.encodeIfPresent(columns, forKey: .columns)
        try c.encodeIfPresent(best, forKey: .best)
        try c.encodeIfPresent(stoppedEarly, forKey: .stoppedEarly)
        try c.encodeIfPresent(distributed, forKey: .distributed)
        try c.encode(gemm, forKey: .gemm)
        try c.encode(precision, forKey: .precision)
        try c.encodeIfPresent(continued, forKey: .continued)
        try c.encode(tableRows, forKey: .tableRows)
        try c.encodeIfPresent(requestSharing, forKey: .requestSharing)
        try c.encodeIfPresent(sharding, forKey: .sharding)
        try c.encode(summary.rows, forKey: .rows)
        try c.encode(summary.clicks, forKey: .clicks)
        try c.encode(summary.conversions, forKey: .conversions)
        try c.encode(summary.epochs, forKey: .epochs)
        try c.encode(summary.threads, forKey: .threads)
        try c.encode(summary.seconds, forKey: .seconds)
        try c.encode(summary.trainSamplesPerSecond, forKey: .trainSamplesPerSecond)
        try c.encode(summary.finalLoss, forKey: .finalLoss)
        try c.encode(summary.readNotes, forKey: .readNotes)
        try c.encode(ResourceUsage.peakRSSMegabytes, forKey: .peakRSS)
    }
}
