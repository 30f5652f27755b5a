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
    @Option(help: "A column of the test rows' file grouping them (a user, a request): adds gauc_ctr, gauc_cvr, gauc_ctcvr.")
    var groupColumn: String?
    @Option(help: "Run every model with its best configuration from this directory of `funnel tune` outputs (DIR/<model>/best.json).")
    var tuned: String?
    @Option(parsing: .unconditional, help: "Tune every model first with this many trials (needs --tune-space, and --valid or --valid-days).")
    var tuneTrials: Int?
    @Option(help: "The search space file for --tune-trials (as `funnel tune --space`).") var tuneSpace: String?
    @Option(help: "The metric tuning trials are scored by on the validation rows (default: --primary; logloss_ctcvr when --primary needs the counterfactual truth or groups).")
    var tuneMonitor: MetricKey?
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
        if let m = tuneMonitor {
            guard tuneTrials != nil else { throw ValidationError("--tune-monitor needs --tune-trials") }
            guard !m.needsTruth, !m.needsGroups else {
                throw ValidationError("--tune-monitor \(m.rawValue) cannot score tuning trials: validation rows have no "
                                      + (m.needsTruth ? "counterfactual truth" : "group column"))
            }
        }
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
            var request = ExperimentRequest(inputs: try experimentInputs(), models: kinds,
                                            configs: Dictionary(uniqueKeysWithValues: try kinds.map { ($0, try modelOptions.config(kind: $0, seed: 0)) }))
            request.tuning = try tuning()
            request.runs = runs
            request.seed = seed
            request.ctcvrProtocol = ctcvrProtocol
            request.concurrency = try resolveThreads(threads)
            request.out = out
            request.baseline = baseline
            request.primary = primary
            request.tuneMonitor = tuneMonitor
            let json = self.json
            let outcome = try ExperimentJob.run(request, note: { if !json { Terminal.note($0) } }, progress: { Terminal.note($0) })
            if json {
                try Terminal.printJSON(outcome.summary)
            } else {
                try Terminal.say(outcome.notes.joined(separator: "\n"))
                try Terminal.say(outcome.summary.terminalTable())
                if let out { try Terminal.say("wrote \(out)/results.md, results.json, report.html") }
            }
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
        inputs.requestSharing = !data.noRequestSharing
        inputs.groupColumn = groupColumn
        return inputs
    }

    /// `--tuned DIR`, or `--tune-trials N` with its space and validation rows.
    private func tuning() throws -> ExperimentTuning {
        if let dir = tuned { return .fromDirectory(dir) }
        guard let n = tuneTrials, let spaceFile = tuneSpace else { return .none }
        return .search(trials: n, space: try SearchSpace.load(path: spaceFile), strategy: tuneStrategy, validFile: valid,
                       validDays: try validDays.map { try Experiment.dayRange($0, flag: "--valid-days") }, earlyStopping: earlyStopping)
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
