import ArgumentParser
import Foundation
import Funnel

struct Experiment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train several models several times on the same data and compare them with the papers' statistics.",
        discussion: """
            Every model is trained --runs times (seeds --seed+1 …) and evaluated on --test. The table gives mean ± std \
            (and standard error) per metric, the primary metric relative to --baseline (esmm-ablation Fig. 3) and which \
            models each beats by a two-sided Welch t-test at p < 0.01. With --out, finished runs are saved as they \
            complete; running the same command again resumes. --out also gets results.md, results.json and report.html.
            """)

    @Option(help: "Training file (with --train-days: the one day-stamped file everything is split from).") var train: String
    @Option(help: "Test file (not with --train-days).") var test: String?
    @Option(help: "Simulator truth file aligned with --test (with --train-days: with --train); adds entire-space CVR metrics.")
    var truth: String?
    @Option(help: "Train on these days of --train, e.g. 1-14 (esmm-ablation: past vs. future evaluation).") var trainDays: String?
    @Option(parsing: .unconditional, help: "Test day (default: the day after --train-days).") var testDay: Int?
    @Option(help: "Also evaluate on these days after the last training day, e.g. 2-6 (esmm-ablation appendix C).")
    var decayDays: String?
    @Option(help: "The day column of --train.") var dayColumn = "day"
    @Option(help: "Comma-separated models, or 'all'.") var models: String
    @Option(parsing: .unconditional, help: "Runs (seeds) per model.") var runs = 5
    @Option(help: "Baseline model for relative cross-entropy (default: ip if listed, else the first).") var baseline: String?
    @Option(help: "Metric for the relative column and the t-tests (a metric key, e.g. logloss_ctcvr or auc_cvr_entire_space).")
    var primary: MetricKey = .loglossCTCVR
    @Option(help: "pCTCVR for the CTCVR metrics: own, or shared-ctr (esmm-sigir2018 §3.1).") var ctcvrProtocol: CTCVRProtocol = .own
    @Option(help: "Output directory (resumable).") var out: String?
    @Option(parsing: .unconditional, help: "Base seed; run r uses seed + r (default: 0).", transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(parsing: .unconditional, help: "Concurrent runs (default: all cores; each run trains on one thread).") var threads: Int?
    @Option(help: "Run every model with its best configuration from this directory of `funnel tune` outputs (DIR/<model>/best.json).")
    var tuned: String?
    @Option(parsing: .unconditional, help: "Tune every model first with this many trials (needs --tune-space, and --valid or --valid-days).")
    var tuneTrials: Int?
    @Option(help: "The search space file for --tune-trials (as `funnel tune --space`).") var tuneSpace: String?
    @Option(help: "grid or random, for --tune-trials.") var tuneStrategy: SearchStrategy = .random
    @Option(help: "Validation file for --tune-trials (without --train-days).") var valid: String?
    @Option(help: "With --train-days: the last training days, held out for --tune-trials, e.g. 13-14.") var validDays: String?
    @Option(parsing: .unconditional, help: "Early stopping within each tuning trial.") var earlyStopping: Int?
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var data: DataOptions
    @Flag(help: "Print the summary as JSON instead of a table.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false

    /// The models of --models, in order.
    private var kinds: [ModelKind] {
        get throws {
            if models == "all" { return ModelKind.allCases }
            return try models.split(separator: ",", omittingEmptySubsequences: false).map {
                let name = $0.trimmingCharacters(in: .whitespaces)
                guard let k = ModelKind(rawValue: name) else {
                    throw ValidationError("--models: unknown model '\(name)'; models: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return k
            }
        }
    }

    func validate() throws {
        try refuseManyRanks("experiment")
        let kinds = try self.kinds
        guard !kinds.isEmpty, Set(kinds).count == kinds.count else { throw ValidationError("--models must list distinct models") }
        guard runs >= 1 else { throw ValidationError("--runs must be ≥ 1") }
        guard minCount >= 1 else { throw ValidationError("--min-count must be ≥ 1") }
        try validateThreads(threads)
        if let baseline, !kinds.map(\.rawValue).contains(baseline) { throw ValidationError("--baseline \(baseline) is not among --models") }
        guard tuned == nil || tuneTrials == nil else { throw ValidationError("give --tuned or --tune-trials, not both") }
        if let n = tuneTrials {
            guard n >= 1 else { throw ValidationError("--tune-trials must be ≥ 1") }
            guard tuneSpace != nil else { throw ValidationError("--tune-trials needs --tune-space") }
            guard trainDays == nil ? valid != nil : validDays != nil else {
                throw ValidationError(trainDays == nil ? "--tune-trials needs --valid (a validation file)" : "--tune-trials with --train-days needs --valid-days")
            }
        }
        if let validDays { _ = try Experiment.dayRange(validDays, flag: "--valid-days") }
        if trainDays != nil {
            guard test == nil else { throw ValidationError("--train-days splits --train by day; leave out --test") }
            _ = try Experiment.dayRange(trainDays!, flag: "--train-days")
            if let decayDays { _ = try Experiment.dayRange(decayDays, flag: "--decay-days") }
        } else {
            guard test != nil else { throw ValidationError("give --test, or --train-days to split --train by day") }
            guard testDay == nil, decayDays == nil else { throw ValidationError("--test-day and --decay-days need --train-days") }
        }
    }

    func run() throws {
        try guarded {
            if let out { try OutputPath.checkDirectory(out, force: force) }  // before any work
            let kinds = try self.kinds
            let template = try modelOptions.config(kind: .esmm, seed: 0)
            let inputs = try experimentInputs()
            let (finalConfigs, tuningNotes) = try tunedConfigs(kinds, inputs: inputs)
            let loaded = try inputs.load()
            if !json { for n in loaded.notes { Terminal.note(n) } }
            let plan = ExperimentPlan(models: kinds, runs: runs, baseSeed: seed, ctcvrProtocol: ctcvrProtocol,
                                      concurrency: try resolveThreads(threads)) { kind, seed in
                var c = finalConfigs[kind]!
                c.seed = seed
                return c
            }
            if let out { try inputs.claim(out, protocol: ctcvrProtocol, seed: seed) }
            let results = try ExperimentRunner(plan: plan, data: loaded.data, directory: out).run { line in Terminal.note(line) }
            let base = baseline ?? (kinds.contains(.ip) ? "ip" : kinds[0].rawValue)
            let summary = ExperimentSummary(results: results, models: kinds.map(\.rawValue), baseline: base, primaryMetric: primary)
            let trainData = loaded.data.train
            let notes = ["train \(train): \(trainData.rowCount) rows, \(trainData.clickCount) clicks, \(trainData.conversionCount) conversions; "
                         + "test \(loaded.testName): \(loaded.data.test.rowCount) rows", "\(runs) run(s) per model, seeds \(seed + 1)…\(seed + UInt64(runs)); "
                         + "pCTCVR protocol: \(ctcvrProtocol.rawValue); downsample negatives: \(template.downsampleNegatives)"] + tuningNotes
            try report(summary, results: results, notes: notes)
        }
    }

    /// The files and splits the flags name.
    private func experimentInputs() throws -> ExperimentInputs {
        var inputs = ExperimentInputs(train: train)
        inputs.test = test
        inputs.truth = truth
        inputs.trainDays = try trainDays.map { try Experiment.dayRange($0, flag: "--train-days") }
        inputs.testDay = testDay
        inputs.decayDays = try decayDays.map { try Experiment.dayRange($0, flag: "--decay-days") }
        inputs.dayColumn = dayColumn
        inputs.minCount = minCount
        inputs.read = try data.readOptions()
        return inputs
    }

    /// Each model's configuration: its own defaults with the flags applied, or its best from
    /// `--tuned`, or tuned here first with `--tune-trials`; with a report line per tuned model.
    private func tunedConfigs(_ kinds: [ModelKind], inputs: ExperimentInputs) throws -> ([ModelKind: ModelConfig], [String]) {
        var configs = Dictionary(uniqueKeysWithValues: try kinds.map { ($0, try modelOptions.config(kind: $0, seed: 0)) })
        var notes: [String] = []
        if let dir = tuned {
            for k in kinds {
                let best = try Tuner.best(in: dir + "/" + k.rawValue)
                guard best.config.kind == k else { throw FunnelError("\(dir)/\(k.rawValue)/best.json is a tuning of \(best.config.kind.rawValue)") }
                configs[k] = best.config
                notes.append(tuningNote(k, best, trials: Tuner.trialCount(in: dir + "/" + k.rawValue)))
            }
        } else if let n = tuneTrials, let spaceFile = tuneSpace {
            let space = try SearchSpace.load(path: spaceFile)
            let data = try inputs.tuningData(validDays: try validDays.map { try Experiment.dayRange($0, flag: "--valid-days") }, validFile: valid)
            for k in kinds {
                var request = TuneRequest(train: train, valid: valid ?? "\(train) days \(validDays ?? "")", base: configs[k]!, space: space,
                                          trials: n)
                request.strategy = tuneStrategy
                request.out = out.map { $0 + "/tuning/" + k.rawValue }
                request.seed = seed
                request.concurrency = try resolveThreads(threads)
                request.monitor = primary
                request.earlyStopping = earlyStopping
                let json = self.json
                let trials = try Tuner.run(request, data: data) { if !json { Terminal.note("[tune \(k.rawValue)] " + $0) } }
                configs[k] = trials[0].config
                notes.append(tuningNote(k, trials[0], trials: trials.count))
            }
        }
        return (configs, notes)
    }

    /// The report files under `--out`, and the table (or JSON) on standard output.
    private func report(_ summary: ExperimentSummary, results: [RunResult], notes: [String]) throws {
        if let out { try ExperimentReport.write(summary: summary, results: results, notes: notes, to: out) }
        if json {
            try Terminal.printJSON(summary)
        } else {
            try Terminal.say(notes.joined(separator: "\n"))
            try Terminal.say(summary.terminalTable())
            if let out { try Terminal.say("wrote \(out)/results.md, results.json, report.html") }
        }
    }

    /// A tuned model's line in the report: its trials and the configuration it runs with.
    private func tuningNote(_ k: ModelKind, _ best: TrialResult, trials: Int) -> String {
        let c = best.config
        return "\(k.rawValue): tuned over \(trials) trial(s), best trial \(best.trial) (\(best.monitor.rawValue) \(String(format: "%.5f", best.value)) on validation): "
            + Tuner.describe(best.params) + "; runs with lr \(c.learningRate), batch \(c.batchSize), embedding \(c.embeddingDim), "
            + "hidden \(c.hidden.map(String.init).joined(separator: ",")), l2 \(c.l2), epochs \(c.epochs)"
            + (c.clickedEpochs.map { ", clicked epochs \($0)" } ?? "")
    }

    /// Parses "A-B" (or "A") into a day range.
    static func dayRange(_ text: String, flag: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0 != nil }), parts.first!! <= parts.last!! else {
            throw ValidationError("\(flag) must be a day or a range like 2-6, got '\(text)'")
        }
        return parts.first!!...parts.last!!
    }
}

extension CTCVRProtocol: ExpressibleByArgument {}
extension MetricKey: ExpressibleByArgument {}
