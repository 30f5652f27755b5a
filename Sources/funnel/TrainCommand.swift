import ArgumentParser
import Foundation
import Funnel

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model and save it as a model directory.")

    @Option(help: "Training CSV/TSV with a header.") var train: String
    @Option(help: "Optional validation file, evaluated after each epoch.") var valid: String?
    @Option(help: "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: ModelKind
    @Option(help: "Output model directory.") var out: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(help: "Random seed (initialisation and shuffling).") var seed: UInt64 = 42
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Option(help: "Start from this model directory's weights (same model and schema).") var initFrom: String?
    @Option(help: "Stream a `funnel prepare` cache through a shuffle buffer sized to keep peak RSS under this many MiB.")
    var memoryBudget: Double?
    @OptionGroup var data: DataOptions
    @Flag(help: "Print one JSON object with the training summary instead of text.") var json = false

    func run() throws {
        try guarded {
            let config = try modelOptions.config(kind: model, seed: seed)
            let nThreads = try resolveThreads(threads)

            let options = try data.readOptions()
            let loadStart = Date()
            let schema: FeatureSchema
            var notes: [String]
            var trainData: EncodedDataset?
            var stream: (cache: ColumnarCache, rows: Int, clicks: Int, conversions: Int)?
            if memoryBudget != nil {
                guard ColumnarCache.isCache(train) else {
                    throw FunnelError("--memory-budget streams a cache: run `funnel prepare --data \(train) --out CACHE` and train on CACHE")
                }
                guard config.downsampleNegatives <= 1 else { throw FunnelError("--memory-budget does not combine with --downsample-negatives") }
                let cache = try ColumnarCache(path: train)
                let fitted = try StreamingCacheChunks.fitSchema(cache, options: options, minCount: minCount)
                schema = fitted.schema
                notes = fitted.report.notes
                stream = (cache, fitted.rows, fitted.clicks, fitted.conversions)
            } else {
                let (s, fullTrain, report) = try DatasetLoader.loadForTraining(train, options: options, minCount: minCount)
                schema = s
                trainData = fullTrain.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed)
                notes = report.notes
            }
            var validData: EncodedDataset?
            if let valid {
                let (v, vr) = try DatasetLoader.load(valid, schema: schema, options: options, requireLabels: true)
                validData = v.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed &+ 1)
                notes += vr.notes
            }
            if !json { for n in notes { Terminal.note(n) } }
            let rowCount = trainData?.rowCount ?? stream!.rows
            if !json {
                Terminal.note("read \(rowCount) rows (\(schema.fields.count) categorical fields, \(schema.dense.count) dense, "
                              + "\(schema.embeddingRows) embedding rows) in \(Terminal.duration(Date().timeIntervalSince(loadStart)))"
                              + (stream != nil ? " (streaming pass over the cache)" : ""))
            }

            let network = FunnelNetwork(config: config, embeddingRows: schema.embeddingRows,
                                        fields: schema.fields.count, denseCount: schema.dense.count, workers: nThreads)
            if let initFrom { try TrainedModel.warmStart(network, schema: schema, from: initFrom) }
            let trainer = Trainer(config: config)
            let source: TrainingChunks
            var bufferRows: Int?
            if let stream, let budget = memoryBudget {
                // What is resident now (vocabularies, network, validation rows) plus Adam's two
                // moments per parameter, then the shuffle buffer: every row's ids, dense values and
                // labels, counted twice (the buffer being filled and the chunk being trained).
                let parameters = network.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }
                let fixed = ResourceUsage.currentRSSMegabytes + Double(parameters) * 8 / 1_048_576 + 64
                let perRow = Double(2 * (4 * (schema.fields.count + schema.dense.count) + 24)) / 1_048_576
                let rows = Int((budget - fixed) / perRow)
                guard rows >= 10_000 else {
                    throw FunnelError(String(format: "--memory-budget %.0f MiB is too small: the model, its optimizer state and the vocabularies need about %.0f MiB, and a useful shuffle buffer (10,000 rows) %.0f more", budget, fixed, 10_000 * perRow))
                }
                bufferRows = min(rows, stream.rows)
                source = StreamingCacheChunks(cache: stream.cache, schema: schema, options: options, bufferRows: bufferRows!,
                                              rows: stream.rows, clicks: stream.clicks)
                if !json {
                    Terminal.note(String(format: "streaming with a shuffle buffer of %d rows (budget %.0f MiB, fixed ≈ %.0f MiB)", bufferRows!, budget, fixed))
                }
            } else {
                source = InMemoryChunks(trainData!)
            }
            var validReports: [EvaluationReport] = []
            let result = try trainer.train(network, chunks: source, progress: { p in
                let line = "[\(config.kind.rawValue) \(p.stage.rawValue)] epoch \(p.epoch)/\(p.epochs)  "
                    + "\(p.rowsDone)/\(p.rowsInEpoch) rows  \(Terminal.rate(p.rowsPerSecond)) rows/s  "
                    + String(format: "loss %.5f", p.meanLoss) + "  ETA \(Terminal.duration(p.secondsLeft))"
                if !json { Terminal.progress(line, final: p.epochFinished) }
            }, afterEpoch: { stage, epoch in
                guard let v = validData, stage == network.architecture.stages.last?.objective else { return }
                let r = EvaluationReport.evaluate(network.predict(v), on: v)
                validReports.append(r)
                if !json {
                    Terminal.note("valid after epoch \(epoch): AUC ctr \(EvaluationReport.format(r.aucCTR)) "
                                  + "cvr \(EvaluationReport.format(r.aucCVR)) ctcvr \(EvaluationReport.format(r.aucCTCVR))")
                }
            })
            let summary = TrainingSummary(
                rows: rowCount, clicks: trainData?.clickCount ?? stream!.clicks,
                conversions: trainData?.conversionCount ?? stream!.conversions,
                epochs: config.epochs, threads: nThreads, seconds: result.seconds,
                trainSamplesPerSecond: result.samplesPerSecond, finalLoss: result.finalLoss, readNotes: notes)
            let trained = TrainedModel(config: config, schema: schema, network: network, training: summary)
            try trained.save(to: out)
            if json {
                Terminal.printJSON(TrainOutput(model: config.kind.rawValue, out: out, summary: summary, valid: validReports.last,
                                               memoryBudget: memoryBudget, bufferRows: bufferRows))
            } else {
                print("trained \(config.kind.rawValue) on \(summary.rows) rows in \(Terminal.duration(result.seconds)) "
                      + "(\(Terminal.rate(result.samplesPerSecond)) samples/s, \(nThreads) thread(s)); saved to \(out)")
                if let budget = memoryBudget {
                    let peak = ResourceUsage.peakRSSMegabytes
                    print(String(format: "peak RSS %.0f MiB (budget %.0f MiB)%@", peak, budget, peak > budget ? " — over budget" : ""))
                }
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

    enum CodingKeys: String, CodingKey {
        case model, out, valid, rows, clicks, conversions, epochs, threads, seconds
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
