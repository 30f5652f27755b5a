import ArgumentParser
import Foundation
import Funnel

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search one model's hyperparameters: grid or random trials on --train, scored on --valid.",
        discussion: """
            The space file maps `funnel train` flag names (without the dashes; snake_case accepted) to a range \
            {min, max, log, integer} or a list of values, e.g. `lr: {min: 1e-4, max: 1e-2, log: true}` and \
            `hidden: ["200,80", "128,64"]`. Random search: trial 0 is the base configuration (the flags given), \
            the others draw from the space with --seed. Grid search: the lists' combinations in name order. \
            Trials run in parallel, one per core, and are saved in --out as they finish; the same command resumes. \
            --out gets results.md, results.json (every trial, best first) and best.json.
            """)

    @Option(help: "Training file.") var train: String
    @Option(help: "Validation file: every trial is scored on it.") var valid: String
    @Option(help: "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: ModelKind
    @Option(help: "Search space file (YAML or JSON).") var space: String
    @Option(parsing: .unconditional, help: "Trials (grid: at most the number of combinations).") var trials = 8
    @Option(help: "grid or random.") var strategy: SearchStrategy = .random
    @Option(help: "Output directory (resumable).") var out: String?
    @Option(help: "The validation metric to optimise (a metric key).") var monitor: MetricKey = .loglossCTCVR
    @Option(parsing: .unconditional, help: "Early stopping within each trial after this many epochs without improvement.")
    var earlyStopping: Int?
    @Option(parsing: .unconditional, help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(parsing: .unconditional, help: "Seed of the trials' draws and of every trial's model (default: 42).",
            transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64 = 42
    @Option(parsing: .unconditional, help: "Concurrent trials (default: all cores; each trains on one thread).") var threads: Int?
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var data: DataOptions
    @Flag(help: "Print the trials as JSON instead of a table.") var json = false

    func validate() throws {
        try refuseManyRanks("tune")
        guard trials >= 1 else { throw ValidationError("--trials must be ≥ 1") }
        guard minCount >= 1 else { throw ValidationError("--min-count must be ≥ 1") }
        if let k = earlyStopping { guard k >= 1 else { throw ValidationError("--early-stopping must be ≥ 1") } }
        try validateThreads(threads)
    }

    func run() throws {
        try guarded {
            var request = TuneRequest(train: train, valid: valid, base: try modelOptions.config(kind: model, seed: seed),
                                      space: try SearchSpace.load(path: space), trials: trials)
            request.strategy = strategy
            request.out = out
            request.seed = seed
            request.concurrency = try resolveThreads(threads)
            request.monitor = monitor
            request.earlyStopping = earlyStopping
            request.minCount = minCount
            request.read = try data.readOptions()
            request.requestSharing = !data.noRequestSharing
            let json = self.json
            let results = try Tuner.run(request) { line in if !json { Terminal.note(line) } }
            if json {
                try Terminal.printJSON(results)
                return
            }
            try Terminal.say("rank  trial  \(monitor.rawValue)  parameters")
            for (k, t) in results.enumerated() {
                try Terminal.say(String(format: "%4d  %5d  %.5f  ", k + 1, t.trial, t.value) + Tuner.describe(t.params))
            }
            if let out { try Terminal.say("best: trial \(results[0].trial); wrote \(out)/results.md, results.json, best.json") }
        }
    }
}

extension SearchStrategy: ExpressibleByArgument {}
