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
    @Option(help: "Test day (default: the day after --train-days).") var testDay: Int?
    @Option(help: "Also evaluate on these days after the last training day, e.g. 2-6 (esmm-ablation appendix C).")
    var decayDays: String?
    @Option(help: "The day column of --train.") var dayColumn = "day"
    @Option(help: "Comma-separated models, or 'all'.") var models: String
    @Option(help: "Runs (seeds) per model.") var runs = 5
    @Option(help: "Baseline model for relative cross-entropy (default: ip if listed, else the first).") var baseline: String?
    @Option(help: "Metric for the relative column and the t-tests (a metric key, e.g. logloss_ctcvr or auc_cvr_entire_space).")
    var primary: MetricKey = .loglossCTCVR
    @Option(help: "pCTCVR for the CTCVR metrics: own, or shared-ctr (esmm-sigir2018 §3.1).") var ctcvrProtocol: CTCVRProtocol = .own
    @Option(help: "Output directory (resumable).") var out: String?
    @Option(help: "Base seed; run r uses seed + r.") var seed: UInt64 = 0
    @Option(help: "Values seen fewer times map to the field's out-of-vocabulary id.") var minCount = 1
    @Option(help: "Concurrent runs (default: all cores; each run trains on one thread).") var threads: Int?
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var data: DataOptions
    @Flag(help: "Print the summary as JSON instead of a table.") var json = false

    func run() throws {
        try guarded {
            let kinds: [ModelKind] = models == "all" ? ModelKind.allCases : try models.split(separator: ",").map {
                let name = $0.trimmingCharacters(in: .whitespaces)
                guard let k = ModelKind(rawValue: name) else {
                    throw FunnelError("unknown model '\(name)'; models: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return k
            }
            guard !kinds.isEmpty, Set(kinds).count == kinds.count else { throw FunnelError("--models must list distinct models") }
            guard runs >= 1 else { throw FunnelError("--runs must be at least 1") }
            let base = baseline ?? (kinds.contains(.ip) ? "ip" : kinds[0].rawValue)
            guard kinds.map(\.rawValue).contains(base) else { throw FunnelError("--baseline \(base) is not among --models") }
            var options = try data.readOptions()
            let template = try modelOptions.config(kind: .esmm, seed: 0)
            // Each model's own defaults (e.g. the TAML comparison's towers), with the flags given applied.
            let configs = Dictionary(uniqueKeysWithValues: try kinds.map { ($0, try modelOptions.config(kind: $0, seed: 0)) })
            let schema: FeatureSchema, trainData: EncodedDataset, testData: EncodedDataset
            var truthColumn: [Float]?
            var decay: [(day: Int, data: EncodedDataset)] = []
            var readNotes: [String]
            var testName: String
            if let trainDays {
                guard test == nil else { throw FunnelError("--train-days splits --train by day; leave out --test") }
                let range = try Experiment.dayRange(trainDays, flag: "--train-days")
                let day = testDay ?? range.upperBound + 1
                let decayOffsets = try decayDays.map { Array(try Experiment.dayRange($0, flag: "--decay-days")) } ?? []
                options.dayColumn = dayColumn
                let loaded = try DatasetLoader.loadByDay(train, options: options, minCount: minCount, trainDays: range,
                                                         evaluationDays: [day] + decayOffsets.map { range.upperBound + $0 })
                (schema, trainData, testData) = (loaded.schema, loaded.train, loaded.days[day]!)
                truthColumn = try truth.map { try DatasetLoader.loadCounterfactual($0, for: nil, dataLines: loaded.report.dataLines) }
                decay = decayOffsets.map { o in (range.upperBound + o, loaded.days[range.upperBound + o]!) }
                readNotes = loaded.report.notes
                testName = "\(train) day \(day)"
            } else {
                guard let test else { throw FunnelError("give --test, or --train-days to split --train by day") }
                guard testDay == nil, decayDays == nil else { throw FunnelError("--test-day and --decay-days need --train-days") }
                let (s, t, report) = try DatasetLoader.loadForTraining(train, options: options, minCount: minCount)
                let (td, testReport) = try DatasetLoader.load(test, schema: s, options: options, requireLabels: true)
                (schema, trainData, testData) = (s, t, td)
                truthColumn = try truth.map { try DatasetLoader.loadCounterfactual($0, for: nil, dataLines: testReport.dataLines) }
                readNotes = report.notes + testReport.notes
                testName = test
            }
            if !json { for n in readNotes { Terminal.note(n) } }
            let concurrency = try resolveThreads(threads)
            let plan = ExperimentPlan(models: kinds, runs: runs, baseSeed: seed, ctcvrProtocol: ctcvrProtocol,
                                      concurrency: concurrency) { kind, seed in
                var c = configs[kind]!
                c.seed = seed
                return c
            }
            if let out { try checkResumable(out) }
            let runner = ExperimentRunner(plan: plan, data: ExperimentData(schema: schema, train: trainData, test: testData,
                                                                           truth: truthColumn, decay: decay), directory: out)
            let results = try runner.run { line in Terminal.note(line) }
            let summary = ExperimentSummary(results: results, models: kinds.map(\.rawValue), baseline: base, primaryMetric: primary)
            let notes = ["train \(train): \(trainData.rowCount) rows, \(trainData.clickCount) clicks, \(trainData.conversionCount) conversions; "
                         + "test \(testName): \(testData.rowCount) rows", "\(runs) run(s) per model, seeds \(seed + 1)…\(seed + UInt64(runs)); "
                         + "pCTCVR protocol: \(ctcvrProtocol.rawValue); downsample negatives: \(template.downsampleNegatives)"]
            if let out {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write(try enc.encode(ExperimentOutput(summary: summary, runs: results)), to: out + "/results.json")
                try AtomicFile.write(Data(("# Funnel experiment\n\n" + notes.map { "- \($0)\n" }.joined() + "\n" + summary.markdown()).utf8),
                                     to: out + "/results.md")
                try AtomicFile.write(Data(ExperimentReport.html(summary: summary, results: results, title: "Funnel experiment",
                                                                notes: notes).utf8), to: out + "/report.html")
            }
            if json {
                Terminal.printJSON(summary)
            } else {
                print(notes.joined(separator: "\n"))
                print(summary.terminalTable())
                if let out { print("wrote \(out)/results.md, results.json, report.html") }
            }
        }
    }

    /// Parses "A-B" (or "A") into a day range.
    static func dayRange(_ text: String, flag: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0 != nil }), parts.first!! <= parts.last!! else {
            throw FunnelError("\(flag) must be a day or a range like 2-6, got '\(text)'")
        }
        return parts.first!!...parts.last!!
    }

    /// A resumed experiment must be the same experiment: same files and evaluation protocol here;
    /// each saved run also carries its model's configuration, which the runner checks.
    private func checkResumable(_ out: String) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let fingerprint = "\(train)|\(test ?? "")|\(truth ?? "")|\(trainDays ?? "")|\(testDay ?? 0)|\(decayDays ?? "")|\(ctcvrProtocol.rawValue)|\(minCount)|\(seed)"
        let path = out + "/experiment.fingerprint"
        if let old = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }), old != fingerprint {
            throw FunnelError("\(out) holds runs of a different experiment (other files, days or protocol); use another --out")
        }
        try AtomicFile.write(Data(fingerprint.utf8), to: path)
    }
}

struct ExperimentOutput: Encodable {
    var summary: ExperimentSummary
    var runs: [RunResult]
}

extension CTCVRProtocol: ExpressibleByArgument {}
extension MetricKey: ExpressibleByArgument {}
