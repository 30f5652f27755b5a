import ArgumentParser
import Foundation
import Funnel

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model and save it as a model directory.")

    @Option(help: "Training CSV/TSV with a header.") var train: String
    @Option(help: "Optional validation file, evaluated after each epoch.") var valid: String?
    @Option(help: "Model: base or esmm.") var model: ModelKind
    @Option(help: "Output model directory.") var out: String
    @Option(help: "Epochs over each stage's sample space.") var epochs = 1
    @Option(help: "Mini-batch size.") var batchSize = 2000
    @Option(help: "Adam learning rate.") var lr = 1e-3
    @Option(help: "Adam beta1.") var beta1 = 0.9
    @Option(help: "Adam beta2.") var beta2 = 0.999
    @Option(help: "Adam epsilon.") var adamEpsilon = 1e-8
    @Option(help: "L2 penalty on all weights (coupled, as PyTorch's weight_decay).") var l2 = 0.0
    @Option(help: "Embedding dimension per field.") var embeddingDim = 18
    @Option(help: "Hidden layer sizes of each tower, comma-separated.") var hidden = "200,80"
    @Option(help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(help: "Random seed (initialisation and shuffling).") var seed: UInt64 = 42
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Keep file order instead of shuffling every epoch.") var noShuffle = false
    @Option(help: "Start from this model directory's weights (same model and schema).") var initFrom: String?
    @OptionGroup var data: DataOptions
    @Flag(help: "Print one JSON object with the training summary instead of text.") var json = false

    func run() throws {
        try guarded {
            var config = ModelConfig(kind: model)
            config.epochs = epochs; config.batchSize = batchSize; config.learningRate = lr
            config.beta1 = beta1; config.beta2 = beta2; config.epsilon = adamEpsilon; config.l2 = l2
            config.embeddingDim = embeddingDim; config.seed = seed; config.shuffle = !noShuffle
            let sizes = hidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 != nil }) else {
                throw FunnelError("--hidden must be comma-separated integers, e.g. 200,80; got '\(hidden)'")
            }
            config.hidden = sizes.map { $0! }
            try config.validate()
            let nThreads = try resolveThreads(threads)

            let options = try data.readOptions()
            let loadStart = Date()
            let (schema, trainData, report) = try DatasetLoader.loadForTraining(train, options: options, minCount: minCount)
            var notes = report.notes
            var validData: EncodedDataset?
            if let valid {
                let (v, vr) = try DatasetLoader.load(valid, schema: schema, options: options, requireLabels: true)
                validData = v
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
                guard let v = validData, stage == network.architecture.stages.last else { return }
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
