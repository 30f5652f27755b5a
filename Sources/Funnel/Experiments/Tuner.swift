import Foundation

/// What `funnel tune` asks for: one model, its base configuration, a search space over it.
public struct TuneRequest: Sendable {
    public var train: String
    public var valid: String
    public var base: ModelConfig
    public var space: SearchSpace
    public var trials: Int
    public var strategy = SearchStrategy.random
    /// Finished trials are saved here as they complete; the same command resumes.
    public var out: String?
    public var seed: UInt64 = 0
    /// Trials at once, each single-threaded.
    public var concurrency = 1
    public var monitor = MetricKey.loglossCTCVR
    /// Early stopping within each trial (nil: every epoch of `--epochs`).
    public var earlyStopping: Int?
    public var minCount = 1
    public var read = ReadOptions()
    /// Trials share requests where the training rows carry them (`FunnelNetwork.training`).
    public var requestSharing = true

    public init(train: String, valid: String, base: ModelConfig, space: SearchSpace, trials: Int) {
        self.train = train
        self.valid = valid
        self.base = base
        self.space = space
        self.trials = trials
    }
}

/// One trial: its overrides, the full configuration they give, and its validation metrics (at
/// the best checkpoint under early stopping, else after the last epoch).
public struct TrialResult: Codable, Sendable {
    public var trial: Int
    public var params: [String: ParameterValue]
    public var config: ModelConfig
    public var monitor: MetricKey
    public var value: Double
    public var metrics: EvaluationReport
    public var bestEpoch: Int?
    public var seconds: Double
    /// The trial shared requests (batches of whole requests); nil in trials saved before sharing (per row).
    public var requestSharing: Bool?

    enum CodingKeys: String, CodingKey {
        case trial, params, config, monitor, value, metrics, seconds
        case bestEpoch = "best_epoch", requestSharing = "request_sharing"
    }
}

/// Grid or random search for one model: every trial trains on `train` and is scored on `valid`
/// by `monitor`; trials run in parallel, one per core, each saved as it finishes.
public enum Tuner {
    /// Training and validation rows encoded with one schema (fitted on the training rows).
    public struct Data: @unchecked Sendable {
        public var schema: FeatureSchema
        public var train: EncodedDataset
        public var valid: EncodedDataset
        public init(schema: FeatureSchema, train: EncodedDataset, valid: EncodedDataset) {
            self.schema = schema; self.train = train; self.valid = valid
        }
    }

    /// Runs the search; `data` (when given) replaces reading `train` and `valid` from files.
    public static func run(_ r: TuneRequest, data given: Tuner.Data? = nil,
                           progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> [TrialResult] {
        guard r.trials >= 1 else { throw FunnelError("at least one trial") }
        let count = r.strategy == .grid ? min(r.trials, try r.space.gridSize ?? { throw FunnelError("grid search needs lists, not ranges") }()) : r.trials
        let overrides = try (0..<count).map { try r.space.trial($0, strategy: r.strategy, seed: r.seed) }
        let configs = try overrides.map { try SearchSpace.apply($0, to: r.base) }
        if let out = r.out { try OutputPath.checkDirectory(out) }
        let data: Data
        if let given { data = given } else {
            var read = r.read
            read.requestLevel = r.requestSharing
            let (schema, train, report) = try DatasetLoader.loadForTraining(r.train, options: read, minCount: r.minCount)
            let (valid, _) = try DatasetLoader.load(r.valid, schema: schema, options: read, requireLabels: true)
            for n in report.notes { progress(n) }
            data = Data(schema: schema, train: train, valid: valid)
        }
        let (schema, train, valid) = (data.schema, data.train, data.valid)
        let sharing = r.requestSharing && train.requests != nil
        for c in configs {
            _ = try FunnelNetwork.attentionFields(c, schema)
            try NetworkSize.check(config: c, embeddingRows: schema.embeddingRows, fields: schema.fields.count, denseCount: schema.dense.count,
                                  maxBatch: RequestBatches.batchRows(batchSize: c.batchSize, sharing: sharing), workers: 1, memoryFraction: 0.8 / Double(max(1, r.concurrency)),
                                  maxBagValues: train.maxBagValues)
        }
        var trials = ResumableJobs(Array(0..<count)) { saved($0, config: configs[$0], sharing: sharing, request: r) }
        if let line = trials.resumeLine("trial") { progress(line) }
        if let out = r.out { try FileManager.default.createDirectory(atPath: out + "/trials", withIntermediateDirectories: true) }
        let results = try trials.run(concurrency: r.concurrency, savePath: { path($0, r) }, progress: progress) { t in
            try trial(t, overrides[t], configs[t], schema: schema, train: train, valid: valid, request: r)
        } finished: { t, result in
            String(format: "trial %d: %@ %@ = %.5f (%.1fs)", t, describe(overrides[t]), r.monitor.rawValue, result.value, result.seconds)
        }
        let sorted = results.sorted { r.monitor.score($0.value) > r.monitor.score($1.value) || ($0.value == $1.value && $0.trial < $1.trial) }
        if let out = r.out { try write(sorted, request: r, to: out) }
        return sorted
    }

    /// Overrides as `name=value` pairs (the base configuration when empty).
    public static func describe(_ params: [String: ParameterValue]) -> String {
        params.isEmpty ? "(base)" : params.keys.sorted().map { "\($0)=\(params[$0]!)" }.joined(separator: " ")
    }

    static func trial(_ t: Int, _ params: [String: ParameterValue], _ config: ModelConfig, schema: FeatureSchema, train: EncodedDataset,
                      valid: EncodedDataset, request r: TuneRequest) throws -> TrialResult {
        let start = Date()
        let data = train.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed)
        let validation = valid.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed &+ 1)
        let network = try FunnelNetwork.training(config: config, schema: schema, on: train, sharing: r.requestSharing)
        let watch = EarlyStopping(monitor: r.monitor, patience: r.earlyStopping)
        var watchError: Error?
        let checkpoints = CheckpointSchedule { epoch, step in
            do {
                return try watch.observe(EvaluationReport.evaluate(network.predict(validation), on: validation), epoch: epoch, step: step,
                                         network: network)
            } catch { watchError = error; return true }
        }
        _ = try Trainer(config: config).train(network, on: data, checkpoints: checkpoints)
        if let watchError { throw watchError }
        let kept = try watch.restoreBest(into: network) ?? { throw FunnelError("trial \(t) made no evaluation") }()
        return TrialResult(trial: t, params: params, config: config, monitor: r.monitor, value: kept.value, metrics: kept.metrics,
                           bestEpoch: r.earlyStopping == nil ? nil : kept.epoch, seconds: Date().timeIntervalSince(start),
                           requestSharing: network.requestSharing != nil)
    }

    static func path(_ t: Int, _ r: TuneRequest) -> String? { r.out.map { $0 + String(format: "/trials/trial-%04d.json", t) } }

    /// A saved trial, if it was made with this exact configuration and monitor.
    static func saved(_ t: Int, config: ModelConfig, sharing: Bool, request r: TuneRequest) -> TrialResult? {
        guard let p = path(t, r), let d = FileManager.default.contents(atPath: p),
              let result = try? JSONDecoder().decode(TrialResult.self, from: d),
              result.config == config, result.monitor == r.monitor, (result.requestSharing ?? false) == sharing else { return nil }
        return result
    }

    /// results.json (every trial, best first), results.md and best.json.
    static func write(_ sorted: [TrialResult], request r: TuneRequest, to out: String) throws {
        struct Output: Encodable {
            var model: String, monitor: MetricKey, strategy: SearchStrategy, trials: [TrialResult]
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(Output(model: r.base.kind.rawValue, monitor: r.monitor, strategy: r.strategy, trials: sorted)),
                             to: out + "/results.json")
        try AtomicFile.write(try enc.encode(sorted[0]), to: out + "/best.json")
        var md = "# Tuning \(r.base.kind.rawValue) (\(r.strategy.rawValue), \(sorted.count) trials, \(r.monitor.rawValue) on \(r.valid))\n\n"
        md += "| rank | trial | parameters | \(r.monitor.rawValue) | auc_ctr | auc_cvr | auc_ctcvr | logloss_ctcvr |\n|---|---|---|---|---|---|---|---|\n"
        for (k, t) in sorted.enumerated() {
            md += "| \(k + 1) | \(t.trial) | \(describe(t.params)) | \(String(format: "%.5f", t.value)) | "
                + [t.metrics.aucCTR, t.metrics.aucCVR, t.metrics.aucCTCVR, t.metrics.loglossCTCVR].map(EvaluationReport.format).joined(separator: " | ") + " |\n"
        }
        try AtomicFile.write(Foundation.Data(md.utf8), to: out + "/results.md")
    }

    /// Trials a tuning directory's results.json lists (0 when absent).
    public static func trialCount(in dir: String) -> Int {
        guard let d = try? InputFile.contents(dir + "/results.json", limit: 64 << 20),
              let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], let t = o["trials"] as? [Any] else { return 0 }
        return t.count
    }

    /// The best configuration a tuning directory holds (`best.json`), for tuned experiments.
    public static func best(in dir: String) throws -> TrialResult {
        let path = dir + "/best.json"
        let data = try InputFile.contents(path, limit: 16 << 20)
        do { return try JSONDecoder().decode(TrialResult.self, from: data) } catch {
            throw FunnelError("\(path): not a tuning result: \(DecodingErrorText.describe(error))")
        }
    }
}
