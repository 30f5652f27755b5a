import ArgumentParser
import Foundation
import Funnel

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Does continuous training pay? Over a day-stamped file, train each day's model (continuous: yesterday's continued; window: from scratch on the last days; frozen: the first day's) and test it on the next day.")

    @Option(help: "A day-stamped CSV/TSV (e.g. `funnel simulate --days 30`'s data.csv).") var data: String
    @Option(help: "The simulator's truth file aligned with --data (adds CVR on the entire space).") var truth: String?
    @Option(help: "Days to replay, e.g. 1-30 (default: every day of the file).") var days: String?
    @Option(help: "Modes, comma-separated: continuous, window, frozen.") var modes = "continuous,window,frozen"
    @Option(parsing: .unconditional, help: "Days the window mode trains on.") var window = 7
    @Option(help: "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: ModelKind
    @Option(help: "Output directory: replay.json, replay.md, report.html, the models and per-day files.") var out: String
    @OptionGroup var modelOptions: ModelOptions
    /// The vocabulary policy of every run (its `--day-column`, default `day`, is the replay's day column).
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(parsing: .unconditional, help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(parsing: .unconditional, help: "Random seed (default: 42).", transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64 = 42
    @Option(parsing: .unconditional, help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print the rows and the summary as one JSON object.") var json = false

    func validate() throws {
        guard window >= 1 else { throw ValidationError("--window must be ≥ 1") }
        guard minCount >= 1 else { throw ValidationError("--min-count must be ≥ 1") }
        try validateThreads(threads)
        if let days { _ = try Experiment.dayRange(days, flag: "--days") }
    }

    func run() throws {
        try guarded {
            var r = ReplayRequest(data: data, config: try modelOptions.config(kind: model, seed: seed), out: out)
            (r.truth, r.dayColumn, r.window, r.minCount, r.threads) = (truth, vocabulary.dayColumn ?? "day", window, minCount, try resolveThreads(threads))
            r.modes = try modes.split(separator: ",").map { name in
                guard let m = ReplayMode(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw FunnelError("--modes: '\(name)' is not continuous, window or frozen")
                }
                return m
            }
            r.days = try days.map { try Experiment.dayRange($0, flag: "--days") }
            r.read.vocabularyPolicy = try vocabulary.policy(previous: nil)
            try OutputPath.checkDirectory(out, force: true)
            let json = self.json
            let rows = try ReplayJob.run(r) { if !json { Terminal.note($0) } }
            try ReplayReport.write(rows, to: out)
            if json {
                struct Output: Encodable { var rows: [ReplayRow]; var summary: [ReplayReport.Summary] }
                try Terminal.printJSON(Output(rows: rows, summary: ReplayReport.summaries(rows)))
            } else {
                try Terminal.say(ReplayReport.markdown(rows))
                try Terminal.say("wrote \(out)/replay.json, replay.md and report.html")
            }
        }
    }
}
