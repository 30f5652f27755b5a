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
    @OptionGroup var data: DataOptions
    @Flag(help: "Print one JSON object with the training summary instead of text.") var json = false

    func run() throws {
        try guarded {
            let config = try modelOptions.config(kind: model, seed: seed)
            let nThreads = try resolveThreads(threads)

            let options = try data.readOptions()
            let loadStart = Date()
            let (schema, fullTrain, report) = try DatasetLoader.loadForTraining(train, options: options, minCount: minCount)
            let trainData = fullTrain.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed)
            var notes = report.notes
            var validData: EncodedDataset?
            if let valid {
                let (v, vr) = try DatasetLoader.load(valid, schema: schema, options: options, requireLabels: true)
                validData = v.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed &+ 1)
                notes += vr.notes
            }
            if !json { for n in notes { Terminal.note(n) } }
            if !json {
                Terminal.note("read \(trainData.rowCount) rows (\(schema.fields.count) categorical fields, \(schema.dense.count) dense, "
                              + "\(schema.embeddingRows) embedding rows) in \(Terminal.duration(Date().timeIntervalSince(loadStart)))")
            }

            let network = FunnelNetwork(config: config, embeddingRows: schema.embeddingRows,
                                        fields: schema.fields.count, denseCount: schema.dense.count, workers: nThreads)
            if let initFrom { try TrainedModel.warmStart(network, schema: schema, from: initFrom) }
            let trainer = Trainer(config: config)
            var validReports: [EvaluationReport] = []
            let result = try trainer.train(network, on: trainData, progress: { p in
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
                rows: trainData.rowCount, clicks: trainData.clickCount, conversions: trainData.conversionCount,
                epochs: config.epochs, threads: nThreads, seconds: result.seconds,
                trainSamplesPerSecond: result.samplesPerSecond, finalLoss: result.finalLoss, readNotes: notes)
            let trained = TrainedModel(config: config, schema: schema, network: network, training: summary)
            try trained.save(to: out)
            if json {
                Terminal.printJSON(TrainOutput(model: config.kind.rawValue, out: out, summary: summary, valid: validReports.last))
            } else {
                print("trained \(config.kind.rawValue) on \(summary.rows) rows in \(Terminal.duration(result.seconds)) "
                      + "(\(Terminal.rate(result.samplesPerSecond)) samples/s, \(nThreads) thread(s)); saved to \(out)")
            }
        }
    }
}

struct TrainOutput: Encodable {
    var model: String
    var out: String
    var summary: TrainingSummary
    var valid: EvaluationReport?

    enum CodingKeys: String, CodingKey {
        case model, out, valid, rows, clicks, conversions, epochs, threads, seconds
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
