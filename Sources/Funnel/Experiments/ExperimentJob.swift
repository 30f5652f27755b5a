import Foundation

/// How each model of an experiment gets its hyperparameters.
public enum ExperimentTuning {
    /// The configurations as given (each model's defaults with the flags applied).
    case none
    /// Each model's best trial from a directory of `funnel tune` outputs (`DIR/<model>/best.json`).
    case fromDirectory(String)
    /// Each model tuned here first: `trials` trials over `space` on the validation rows (a file,
    /// or the last training days), the same budget for every model.
    case search(trials: Int, space: SearchSpace, strategy: SearchStrategy, validFile: String?, validDays: ClosedRange<Int>?,
                earlyStopping: Int?)
}

/// `funnel experiment` as a library call (beside `TrainingJob`): the inputs, each model's
/// configuration, every run, and the summary with its notes.
public struct ExperimentRequest {
    public var inputs: ExperimentInputs
    public var models: [ModelKind]
    /// Each model's configuration before tuning (its seed is set per run).
    public var configs: [ModelKind: ModelConfig]
    public var tuning = ExperimentTuning.none
    public var runs = 5
    public var seed: UInt64 = 0
    public var ctcvrProtocol = CTCVRProtocol.own
    public var concurrency = 1
    /// The experiment directory: runs and tuning trials saved as they finish (a rerun resumes), the reports.
    public var out: String?
    public var baseline: String?
    public var primary = MetricKey.loglossCTCVR
    /// What tuning trials are scored by (nil: `primary`, unless it needs what validation rows do
    /// not have — the simulator's counterfactual truth, a group column — then log loss CTCVR).
    public var tuneMonitor: MetricKey?

    /// The metric tuning trials are scored by, and why when it is not `primary`.
    public var tuningMonitor: (metric: MetricKey, because: String?) {
        if let m = tuneMonitor { return (m, nil) }
        guard primary.needsTruth || primary.needsGroups else { return (primary, nil) }
        return (.loglossCTCVR, "tuning monitors logloss_ctcvr: \(primary.rawValue) needs "
                + (primary.needsTruth ? "the counterfactual truth, which validation rows (like a real log) do not have"
                                      : "a group column, which validation is not read with"))
    }

    public init(inputs: ExperimentInputs, models: [ModelKind], configs: [ModelKind: ModelConfig]) {
        self.inputs = inputs
        self.models = models
        self.configs = configs
    }
}

public struct ExperimentOutcome {
    public var summary: ExperimentSummary
    public var results: [RunResult]
    /// What the report prints above the table: the data, the protocol, each tuned model's choice.
    public var notes: [String]
}

public enum ExperimentJob {
    /// Tunes (when asked), loads the data, runs every model `runs` times (resuming from `out`),
    /// summarises, and writes the report files under `out`. `note` receives the read notes and
    /// one line per finished tuning trial, `progress` one line per finished run.
    public static func run(_ r: ExperimentRequest, note: @escaping @Sendable (String) -> Void,
                           progress: @escaping @Sendable (String) -> Void) throws -> ExperimentOutcome {
        let (configs, tuningNotes) = try tunedConfigs(r, note: note)
        let loaded = try r.inputs.load()
        for k in r.models { _ = try FunnelNetwork.attentionFields(configs[k]!, loaded.data.schema) }
        for n in loaded.notes { note(n) }
        let plan = ExperimentPlan(models: r.models, runs: r.runs, baseSeed: r.seed, ctcvrProtocol: r.ctcvrProtocol,
                                  concurrency: r.concurrency) { kind, seed in
            var c = configs[kind]!
            c.seed = seed
            return c
        }
        if let out = r.out { try r.inputs.claim(out, protocol: r.ctcvrProtocol, seed: r.seed, sharing: loaded.data.sharesRequests) }
        let results = try ExperimentRunner(plan: plan, data: loaded.data, directory: r.out).run(progress: progress)
        let base = r.baseline ?? (r.models.contains(.ip) ? "ip" : r.models[0].rawValue)
        let summary = ExperimentSummary(results: results, models: r.models.map(\.rawValue), baseline: base, primaryMetric: r.primary)
        let train = loaded.data.train, downsample = r.configs[r.models[0]]?.downsampleNegatives ?? 1
        let notes = ["train \(r.inputs.train): \(train.rowCount) rows, \(train.clickCount) clicks, \(train.conversionCount) conversions; "
                     + "test \(loaded.testName): \(loaded.data.test.rowCount) rows",
                     "\(r.runs) run(s) per model, seeds \(r.seed + 1)…\(r.seed + UInt64(r.runs)); "
                     + "pCTCVR protocol: \(r.ctcvrProtocol.rawValue); downsample negatives: \(downsample)"] + tuningNotes
        if let out = r.out { try ExperimentReport.write(summary: summary, results: results, notes: notes, to: out) }
        return ExperimentOutcome(summary: summary, results: results, notes: notes)
    }

    /// Each model's configuration: as given, its best from a tuning directory, or tuned here
    /// first (trials saved under `out/tuning/<model>`); with a report line per tuned model.
    static func tunedConfigs(_ r: ExperimentRequest, note: @escaping @Sendable (String) -> Void) throws -> ([ModelKind: ModelConfig], [String]) {
        var configs = r.configs
        var notes: [String] = []
        switch r.tuning {
        case .none: break
        case .fromDirectory(let dir):
            for k in r.models {
                let best = try Tuner.best(in: dir + "/" + k.rawValue)
                guard best.config.kind == k else { throw FunnelError("\(dir)/\(k.rawValue)/best.json is a tuning of \(best.config.kind.rawValue)") }
                configs[k] = best.config
                notes.append(tuningNote(k, best, trials: Tuner.trialCount(in: dir + "/" + k.rawValue)))
            }
        case let .search(trials, space, strategy, validFile, validDays, earlyStopping):
            let data = try r.inputs.tuningData(validDays: validDays, validFile: validFile)
            let monitor = r.tuningMonitor
            guard !monitor.metric.needsTruth, !monitor.metric.needsGroups else {
                throw FunnelError("--tune-monitor \(monitor.metric.rawValue) cannot score tuning trials: validation rows have no "
                                  + (monitor.metric.needsTruth ? "counterfactual truth" : "group column"))
            }
            if let why = monitor.because { notes.append(why) }
            let validName = validFile ?? "\(r.inputs.train) days \(validDays.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" } ?? "")"
            for k in r.models {
                var request = TuneRequest(train: r.inputs.train, valid: validName, base: configs[k]!, space: space, trials: trials)
                request.strategy = strategy
                request.out = r.out.map { $0 + "/tuning/" + k.rawValue }
                request.seed = r.seed
                request.concurrency = r.concurrency
                request.monitor = monitor.metric
                request.earlyStopping = earlyStopping
                request.requestSharing = r.inputs.requestSharing
                let done = try Tuner.run(request, data: data) { note("[tune \(k.rawValue)] " + $0) }
                configs[k] = done[0].config
                notes.append(tuningNote(k, done[0], trials: done.count))
            }
        }
        return (configs, notes)
    }

    /// A tuned model's line in the report: its trials and the configuration it runs with.
    static func tuningNote(_ k: ModelKind, _ best: TrialResult, trials: Int) -> String {
        let c = best.config
        return "\(k.rawValue): tuned over \(trials) trial(s), best trial \(best.trial) (\(best.monitor.rawValue) \(String(format: "%.5f", best.value)) on validation): "
            + Tuner.describe(best.params) + "; runs with lr \(c.learningRate), batch \(c.batchSize), embedding \(c.embeddingDim), "
            + "hidden \(c.hidden.map(String.init).joined(separator: ",")), l2 \(c.l2), epochs \(c.epochs)"
            + (c.clickedEpochs.map { ", clicked epochs \($0)" } ?? "")
    }
}
