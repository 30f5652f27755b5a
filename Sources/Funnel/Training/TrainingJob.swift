import Foundation

/// What `funnel train` asks for: data, model configuration, and how to hold the data.
public struct TrainingRequest: Sendable {
    public var train: String
    public var valid: String?
    public var out: String
    public var config: ModelConfig
    public var minCount = 1
    public var threads = 1
    /// Continue this model directory (`ModelContinuation`): its weights, vocabularies grown by
    /// the training file's new ids, and Adam's state when it was saved.
    public var initFrom: String?
    /// Save Adam's moments and step counts beside the weights (`OptimizerState`).
    public var saveOptimizerState = false
    /// With `initFrom`: also write `out/delta/`, what a server holding PREV applies to become
    /// this model (`ModelDelta`).
    public var writeDelta = false
    /// Stream a prepared cache through a shuffle buffer sized to keep peak RSS under this many
    /// MiB; nil trains in memory.
    public var memoryBudgetMiB: Double?
    /// With a memory budget: this many rows per shuffle buffer instead of what the budget allows
    /// (so runs with different rank counts or budgets stream the same buffers).
    public var shuffleBufferRows: Int?
    /// With a memory budget, one process: read the next shuffle buffer on a second thread while
    /// this one trains (false: after it; the same buffers and weights either way).
    public var prefetchBuffers = true
    public var read = ReadOptions()
    /// Write through a symbolic link or over a non-regular file at the output.
    public var force = false
    /// Early stopping on `valid`: stop after this many checkpoints without improvement of
    /// `monitor` and keep the best checkpoint's weights (nil: train every epoch, keep the last).
    public var earlyStopping: Int?
    public var monitor = MetricKey.loglossCTCVR
    /// Checkpoint every this many optimizer steps of the last stage (nil: after every epoch).
    public var evalEverySteps: Int?
    /// The ranks of a data-parallel job (`mpirun -np N funnel train`): every rank reads the
    /// data, fits the same schema and builds the same network; each computes its share of every
    /// global batch; rank 0 alone writes the model directory. `.single`: one process.
    public var communicator = Communicator.single
    /// How the network's GEMMs run (`--gemm`, `--precision`).
    public var gemm = GEMMSettings.standard
    /// Compute each request's part once where the data has requests (`RequestSharing`), in
    /// batches of whole requests; false: every row on its own, as before (`--no-request-sharing`).
    public var requestSharing = true
    /// At most this many impressions of one request per training batch (`RequestBatches`; nil:
    /// whole requests).
    public var requestPieceRows: Int?
    /// Under mpirun: whether the embedding tables are row-sharded over the ranks
    /// (`EmbeddingShardingPlan`); `auto` shards tables larger than `shardThresholdMiB`.
    public var embeddingSharding = EmbeddingShardingMode.auto
    public var shardThresholdMiB = 64.0
    /// How the model directory holds row-sharded tables (`WeightsLayout`).
    public var weightsLayout = WeightsLayout.auto
    /// Overlap the dense all-reduce with the embedding exchanges (`Trainer.overlapCollectives`).
    public var overlapCollectives = true

    public init(train: String, out: String, config: ModelConfig) {
        self.train = train
        self.out = out
        self.config = config
    }
}

/// What a training run reports as it goes.
public enum TrainingEvent: Sendable {
    /// A note about the data read (dropped rows, inferred roles, the source chosen).
    case note(String)
    case progress(TrainingProgress)
    /// The validation file's metrics at a checkpoint of the last stage (after an epoch, or
    /// every N steps).
    case validated(epoch: Int, step: Int, EvaluationReport)
}

/// What a training run produced (the model directory is written).
public struct TrainingOutcome: Sendable {
    public var summary: TrainingSummary
    /// Validation metrics at each checkpoint of the last stage.
    public var validation: [EvaluationReport]
    /// The checkpoint whose weights were saved (with validation).
    public var best: Checkpoint?
    public var stoppedEarly: Bool
    /// Rows of the shuffle buffer when streaming.
    public var bufferRows: Int?
    /// The column roles the model was trained with (inferred or as declared).
    public var layout: TableLayout
    /// A data-parallel run's communication (this rank's).
    public var communication: CommunicationStats? = nil
    /// With `initFrom`: what continuing changed.
    public var continued: ModelContinuation.Growth? = nil
    /// Embedding rows per categorical field of the saved model.
    public var tableRows: [String: Int] = [:]
    /// Where the data has requests: what was shared and what fell back.
    public var requestSharing: RequestSharingReport? = nil
    /// A data-parallel run's tables: replicated or row-sharded, bytes per rank, bytes per step.
    public var sharding: ShardingReport? = nil
}

/// `funnel train` as one library call: chooses the data source (in memory, or a streamed cache
/// under a memory budget), fits the schema, builds the network, trains, evaluates the validation
/// file after every epoch and saves the model directory atomically.
public enum TrainingJob {
    public static func run(_ request: TrainingRequest, events: @escaping (TrainingEvent) -> Void = { _ in }) throws -> TrainingOutcome {
        let config = request.config
        try config.validate()
        try OutputPath.checkDirectory(request.out, force: request.force)  // before any work
        if let valid = request.valid { try InputFile.checkReadable(valid) }  // before the training file is read
        // Ranks that would read different files at the same path are refused before any reading.
        try request.communicator.checkSameInputs([request.train] + [request.valid].compactMap { $0 })
        try request.communicator.checkSame([request.embeddingSharding.rawValue, String(request.shardThresholdMiB)],
                                           what: "embedding sharding (--embedding-sharding, --shard-threshold-mb)")
        guard !request.writeDelta || request.initFrom != nil else { throw FunnelError("a delta (--delta) needs the model it continues (--init-from)") }
        var continuation = try request.initFrom.map { try ModelContinuation(directory: $0, config: config) }
        var request = request
        if let continuation {
            request.read = try ContinuedSchema.readOptions(request.read, continuing: continuation.previous.schema, from: continuation.directory,
                                                           reading: request.train)
        }
        // Sharing requests, a raw cache's request-only lists are read once per request.
        request.read.requestLevel = request.requestSharing
        let loadStart = Date()
        let data = try TrainingData.open(request, growing: continuation?.schema, splittingVocabularies: Self.splitsVocabularies(request))
        var notes = data.notes
        var validData: EncodedDataset?
        if let valid = request.valid {
            let (v, report) = try DatasetLoader.load(valid, schema: data.schema, options: request.read, requireLabels: true,
                                                     vocabulary: data.vocabulary)
            validData = v.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed &+ 1)
            notes += report.notes
        }
        for n in notes { events(.note(n)) }
        let schema = data.schema
        events(.note(Self.describe(schema.layout)))
        events(.note("read \(data.rows) rows (\(schema.fields.count) categorical fields, \(schema.dense.count) dense, "
                     + "\(schema.embeddingRows) embedding rows) in \(formatDuration(Date().timeIntervalSince(loadStart)))"
                     + (data.cache != nil ? " (streaming pass over the cache)" : "")))
        // A batch never holds more rows than a stage has (OVERSAMPLING repeats converted clicks):
        // size the buffers for what can occur, not for an oversized --batch-size.
        let workers = max(1, request.threads)
        let repeats = config.architecture.stages.contains { $0.space == .clickedWithOversampledConversions } ? max(1, config.oversample) : 1
        let sharing = request.requestSharing ? data.requestFields : nil
        // Batches of whole requests run up to one request past the batch size.
        let batchRows = RequestBatches.batchRows(batchSize: config.batchSize, sharing: sharing != nil)
        let maxBatch = (min(batchRows, max(data.rows * repeats, 1)) + workers - 1) / workers
        let comm = request.communicator
        let plan = try EmbeddingShardingPlan.decide(request.embeddingSharding, thresholdMiB: request.shardThresholdMiB,
                                                    rows: schema.embeddingRows, dim: config.embeddingDim,
                                                    tables: config.architecture.trunkCount, ranks: comm.size,
                                                    lookupRows: workers * maxBatch * (schema.fields.count + data.maxBagValues),
                                                    continuing: request.initFrom != nil)
        if let budget = request.memoryBudgetMiB { try plan.check(budgetMiB: budget) }
        let layout = try plan.weightsLayout(request.weightsLayout, budgetMiB: request.memoryBudgetMiB ?? NetworkSize.availableMiB,
                                            savingMoments: request.saveOptimizerState)
        try NetworkSize.check(config: config, embeddingRows: plan.rowsHeld(rank: comm.rank), fields: schema.fields.count,
                              denseCount: schema.dense.count, maxBatch: maxBatch, workers: workers, maxBagValues: data.maxBagValues,
                              sharesRequests: sharing != nil)
        let network = try FunnelNetwork(config: config, schema: schema, maxBatch: maxBatch, workers: request.threads,
                                    maxBagValues: data.maxBagValues, shard: plan.shard(rank: comm.rank))
        network.shareTables(over: comm)
        if plan.sharded {
            events(.note(String(format: "embedding tables row-sharded over %d ranks: %.0f MiB per rank of %.0f MiB per table (with Adam's state)",
                                comm.size, plan.tableBytes(rank: comm.rank) / 1_048_576, plan.tableBytes / 1_048_576)))
        }
        network.gemm = request.gemm
        if let sharing { network.shareRequests(fields: sharing) }
        let growth = try continuation?.start(network, schema: schema)
        // PREV's weights are copied: keep them only for a delta (freed before any training buffer).
        let deltaBase = request.writeDelta ? continuation?.previous : nil
        continuation = nil
        if let growth, growth.addedRows > 0 {
            events(.note("continuing \(request.initFrom!): \(growth.keptRows) embedding rows kept, \(growth.addedRows) added for new ids"
                         + (growth.optimizerState ? ", Adam's state carried over" : "")))
        }
        let (source, bufferRows) = try data.chunks(for: network, request: request)
        if let bufferRows, let budget = request.memoryBudgetMiB {
            events(.note(String(format: "streaming with a shuffle buffer of %d rows (budget %.0f MiB)", bufferRows, budget)))
        }
        guard request.earlyStopping == nil || validData != nil else { throw FunnelError("early stopping needs validation rows") }
        let watch = EarlyStopping(monitor: request.monitor, patience: request.earlyStopping)
        var watchError: Error?
        let checkpoints = validData.map { v in
            CheckpointSchedule(everySteps: request.evalEverySteps) { epoch, step in
                do {
                    let r = EvaluationReport.evaluate(try network.predictCollectively(v), on: v)
                    events(.validated(epoch: epoch, step: step, r))
                    return try watch.observe(r, epoch: epoch, step: step, network: network)
                } catch {
                    watchError = error
                    return true
                }
            }
        }
        // Ranks that would train different models are refused before the first step (a sharded
        // table's slice differs by rank: its whole size is in the schema).
        try comm.checkSame([config, schema], what: "model configuration and schema")
        try comm.checkSame([data.rows, data.clicks, data.conversions, plan.sharded,
                            network.parameters.map { network.sharded?.owns($0) == true ? -1 : $0.count }],
                           what: "training rows and network shape")
        let trainer = Trainer(config: config, communicator: comm)
        trainer.startingSteps = growth?.startingSteps
        trainer.requestPieceRows = request.requestPieceRows
        trainer.overlapCollectives = request.overlapCollectives
        let result = try trainer.train(network, chunks: source, progress: { events(.progress($0)) }, checkpoints: checkpoints)
        let communication = comm.isSingleProcess ? nil : comm.stats
        if let watchError { throw watchError }
        let kept = watch.restoreBest(into: network)  // under early stopping: the best checkpoint's weights
        var summary = TrainingSummary(
            rows: data.rows, clicks: data.clicks, conversions: data.conversions, epochs: config.epochs, threads: request.threads,
            seconds: result.seconds, trainSamplesPerSecond: result.samplesPerSecond, finalLoss: result.finalLoss, readNotes: notes)
        summary.best = request.earlyStopping != nil ? kept : nil
        summary.stoppedEarly = validData == nil ? nil : result.stoppedEarly
        try save(TrainedModel(config: config, schema: schema, network: network, training: summary), request, layout: layout,
                 steps: result.optimizerSteps, deltaFrom: deltaBase, vocabulary: data.vocabulary)
        var sharding = communication.map {
            ShardingReport(plan, tables: network.embeddings.map(\.table.name), communication: $0, weightsLayout: layout)
        }
        if comm.isDistributed {
            sharding?.vocabulary = data.vocabulary == nil ? "whole" : "split"
            let held = data.vocabulary?.valuesHeld ?? VocabularyShard.values(of: schema.fields)
            sharding?.vocabularyValuesPerRank = try comm.allgather(values: [Int64(held)]).map { Int($0[0]) }
            sharding?.peakRSSMiBPerRank = try comm.allgather(values: [ResourceUsage.peakRSSMegabytes]).map { $0[0] }
        }
        let sharingReport = data.requestFields.map { fields in
            RequestSharingReport(network.requestSharing, requestFields: fields, schema: schema, rowsPerRequest: data.rowsPerRequest,
                                 requestsCut: result.requestPiecesCut)
        }
        return TrainingOutcome(summary: summary, validation: watch.history.map(\.metrics), best: summary.best,
                               stoppedEarly: result.stoppedEarly, bufferRows: bufferRows, layout: schema.layout,
                               communication: communication, continued: growth, tableRows: schema.tableRows,
                               requestSharing: sharingReport,
                               sharding: sharding)
    }

    /// Whether the fitted tables, of `rows` rows, will be row-sharded — then the vocabularies
    /// stay split over the ranks too (`VocabularyShard`); nil when the tables never are.
    static func splitsVocabularies(_ r: TrainingRequest) -> ((Int) throws -> Bool)? {
        guard r.embeddingSharding != .replicated, r.communicator.isDistributed else { return nil }
        return { rows in
            try EmbeddingShardingPlan.decide(r.embeddingSharding, thresholdMiB: r.shardThresholdMiB, rows: rows, dim: r.config.embeddingDim,
                                             tables: r.config.architecture.trunkCount, ranks: r.communicator.size, lookupRows: 0,
                                             continuing: r.initFrom != nil).sharded
        }
    }

    /// Rank 0 writes the model directory. Row-sharded tables are gathered whole on rank 0 (the
    /// model a replicated run saves) or, in the sharded layout, streamed from every rank into
    /// shard files; either way every rank takes part.
    private static func save(_ model: TrainedModel, _ request: TrainingRequest, layout: WeightsLayout, steps: [Int],
                             deltaFrom base: TrainedModel?, vocabulary: VocabularyShard?) throws {
        let comm = request.communicator, network = model.network
        if layout == .sharded, let writer = ShardedWeightsWriter(network) {
            // Split vocabularies stay split: shard files beside the weights' (`model.schema` holds counts).
            let words = vocabulary.map(ShardedVocabularyWriter.init)
            if comm.isRoot {
                try model.save(to: request.out, force: request.force, sharded: writer, vocabularies: words)
            } else {
                try writer.send()
                try words?.send()
            }
            return
        }
        var model = model
        if let vocabulary, let fields = try vocabulary.gathered(everyRank: false) {
            model.manifest.schema.fields = fields  // joined on rank 0, which gathers the tables too
        }
        guard let whole = try network.gatheredReplica(schema: model.schema, moments: request.saveOptimizerState), comm.isRoot else { return }
        let optimizer = request.saveOptimizerState ? OptimizerState.capture(whole, steps: steps) : nil
        try TrainedModel(config: model.config, schema: model.schema, network: whole, training: model.manifest.training)
            .save(to: request.out, force: request.force, optimizer: optimizer, deltaFrom: base)
    }

    /// The column roles in one line, so a user sees what type inference decided.
    public static func describe(_ l: TableLayout) -> String {
        func list(_ names: [String]) -> String { names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + ", …" }
        return "columns: labels \(l.clickColumn), \(l.conversionColumn); \(l.categorical.count) categorical (\(list(l.categorical))); "
            + "\(l.dense.count) dense (\(list(l.dense)))" + (l.ignored.isEmpty ? "" : "; ignored \(list(l.ignored))")
    }

    static func formatDuration(_ s: Double) -> String { s < 60 ? String(format: "%.0fs", s) : String(format: "%.1f min", s / 60) }
}

/// The training rows, in memory or as a prepared cache to stream, with their fitted schema.
struct TrainingData {
    var schema: FeatureSchema
    var notes: [String]
    var rows: Int
    var clicks: Int
    var conversions: Int
    /// In memory (downsampled as configured), or nil when streaming.
    var inMemory: EncodedDataset?
    /// The cache to stream under a memory budget.
    var cache: ColumnarCache?
    /// The most multi-valued values a row has (sizes the sparse gradient buffers).
    var maxBagValues = 0
    /// Multi-valued values per row on average (sizes a streaming shuffle buffer).
    var bagValuesPerRow = 0.0
    /// The fields constant within a request, when the rows carry requests.
    var requestFields: [Int]?
    /// Rows per request on average (in memory; nil when streaming).
    var rowsPerRequest: Double?
    /// The vocabularies split over the ranks (`schema` then holds counts only).
    var vocabulary: VocabularyShard?

    /// Chooses the source: a memory budget streams a `funnel prepare` cache (the schema fitted
    /// in one streaming pass); otherwise the file (CSV/TSV or cache) is read whole.
    static func open(_ r: TrainingRequest, growing previous: PreviousSchema?, splittingVocabularies split: ((Int) throws -> Bool)?) throws
        -> TrainingData {
        guard let budget = r.memoryBudgetMiB else { return try openInMemory(r, r.communicator, growing: previous, splittingVocabularies: split) }
        guard budget > 0, budget.isFinite else { throw FunnelError("the memory budget must be a positive number of MiB") }
        guard try TableFormats.detect(r.train) is CacheFormat else {
            throw FunnelError("\(r.train): streaming under a memory budget reads a prepared cache; "
                              + "run `funnel prepare --data \(r.train) --out CACHE` and train on CACHE")
        }
        guard r.config.downsampleNegatives <= 1 else { throw FunnelError("negative downsampling does not combine with streaming") }
        let cache = try ColumnarCache(path: r.train)
        // A data-parallel job streams sharded: each rank reads its rows of every group.
        var options = r.read
        options.shard = r.communicator.shard
        let fitted = try StreamingCacheChunks.fitSchema(cache, options: options, minCount: r.minCount, communicator: r.communicator,
                                                        growing: previous, splittingVocabularies: split, threads: r.threads)
        // Requests: raw Ali-CCP's shared records, or a request column stored by `funnel prepare`.
        let carriesRequests = cache.footer.shared != nil || cache.footer.requestColumn != nil
        let requestFields = carriesRequests ? cache.requestFields.compactMap(fitted.schema.layout.categorical.firstIndex(of:)) : nil
        return TrainingData(schema: fitted.schema, notes: fitted.report.notes, rows: fitted.rows, clicks: fitted.clicks,
                            conversions: fitted.conversions, inMemory: nil, cache: cache, maxBagValues: fitted.maxBagValues,
                            bagValuesPerRow: Double(fitted.bagValues) / Double(max(1, fitted.rows)), requestFields: requestFields,
                            vocabulary: fitted.vocabulary)
    }

    /// The rows in memory. In a data-parallel job this rank reads its shard of the file (every
    /// `size`-th data row), the ranks merge their vocabulary counts and dense moments into one
    /// schema and share their rows' labels (the label view, `ShardView`); one rank reads them all.
    static func openInMemory(_ r: TrainingRequest, _ comm: Communicator, growing previous: PreviousSchema?,
                             splittingVocabularies split: ((Int) throws -> Bool)?) throws -> TrainingData {
        let (schema, local, report, vocabulary) = try DatasetLoader.loadForTraining(r.train, options: r.read, minCount: r.minCount,
                                                                                    communicator: comm, growing: previous,
                                                                                    splittingVocabularies: split)
        let view = try ShardView.labelView(of: local, communicator: comm)
        let data = view.downsamplingNegatives(factor: r.config.downsampleNegatives, seed: r.config.seed)
        // A label view's request keys are every rank's rows'; its fields are the local rows'.
        let fields = (data.shard?.local.requests ?? data.requests)?.fields
        return TrainingData(schema: schema, notes: report.notes, rows: data.rowCount, clicks: data.clickCount,
                            conversions: data.conversionCount, inMemory: data, cache: nil,
                            maxBagValues: try comm.maximum(data.shard?.local.maxBagValues ?? data.maxBagValues),
                            requestFields: fields, rowsPerRequest: data.requests?.meanRowsPerRequest, vocabulary: vocabulary)
    }

    /// The chunk source for `network`: the rows in memory, or the cache through a shuffle buffer
    /// sized from the budget (`StreamingCacheChunks.bufferRows`).
    func chunks(for network: FunnelNetwork, request: TrainingRequest) throws -> (TrainingChunks, bufferRows: Int?) {
        if let inMemory { return (InMemoryChunks(inMemory), nil) }
        let comm = request.communicator
        var rows = try StreamingCacheChunks.bufferRows(budgetMiB: request.memoryBudgetMiB!, network: network, schema: schema,
                                                       totalRows: self.rows,
                                                       bagValuesPerRow: bagValuesPerRow,
                                                       groupRows: cache!.footer.groups.map(\.rows).max() ?? 0, ranks: comm.size,
                                                       requests: request.requestSharing && requestFields != nil,
                                                       prefetch: request.prefetchBuffers)
        if let fixed = request.shuffleBufferRows {
            guard fixed >= 1 else { throw FunnelError("a shuffle buffer needs at least one row") }
            rows = min(fixed, self.rows)
        }
        var options = request.read
        // Every rank must fill the same buffers: the smallest any rank's budget allows.
        rows = try comm.minimum(rows)
        options.shard = comm.shard
        let source = StreamingCacheChunks(cache: cache!, schema: schema, options: options, bufferRows: rows, rows: self.rows,
                                          clicks: clicks)
        source.communicator = comm
        source.vocabulary = vocabulary
        source.prefetch = request.prefetchBuffers
        return (source, rows)
    }
}
