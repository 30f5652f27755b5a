import ArgumentParser
import Foundation
import Funnel

struct GBDT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gbdt",
        abstract: "Two-stage LightGBM install prediction (RecSys Challenge 2023): two-step and end-to-end models, calibration, ensemble.",
        discussion: "Needs LightGBM's C library from the `lightgbm` Python wheel (`make deps`, or FUNNEL_LIGHTGBM_LIB=path/lib_lightgbm.so).",
        subcommands: [GBDTTrain.self, GBDTPredict.self, GBDTEval.self])
}

extension TableLayoutPreset: ExpressibleByArgument {}

/// Options for reading tables in the GBDT commands.
struct GBDTDataOptions: ParsableArguments {
    @Option(help: "Table layout: auto (RecSys 2023 when the header has f_0…f_79), recsys2023 or generic.")
    var layout: TableLayoutPreset = .auto
    @Option(help: "Generic layout: an integer day column (enables day of week and the temporal split).")
    var dayColumn: String?
    @OptionGroup var data: DataOptions
}

struct GBDTTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fit features and train P(like), P(install | like) and P(install) with early stopping; calibrate on the validation rows.")

    @Option(help: "Training file. Without --valid it is split by day (config split: train 45–65, validate 66).")
    var train: String
    @Option(help: "Validation file (early stopping and calibration).") var valid: String?
    @Option(help: "Output model directory.") var out: String
    @Option(help: "YAML or JSON config (features, LightGBM parameters, split, ensemble, search).") var config: String?
    @Option(parsing: .unconditional, help: "LightGBM threads (default: the config's, else all cores).") var threads: Int?
    @Option(parsing: .unconditional, help: "Random seed (overrides the config's).", transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64?
    @OptionGroup var options: GBDTDataOptions
    @OptionGroup var collective: CollectiveOptions
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false
    @Flag(help: "Data-parallel LightGBM under mpirun (detected by itself there; with this flag, running outside mpirun is an error). Rank 0 writes the model.")
    var distributed = false

    func validate() throws { try validateThreads(threads) }

    func run() throws {
        // Find LightGBM before MPI starts: locating it may run python3, and a process that has
        // initialised MPI must not fork.
        _ = try? LightGBMLibrary.shared()
        collective.apply()
        try runRanks(explicit: distributed) { try trainHere($0, quiet: $1) }
    }

    private func trainHere(_ comm: Communicator, quiet: Bool) throws {
        var request = GBDTTrainingRequest(train: train, out: out)
        request.communicator = comm
        request.valid = valid
        request.config = try config.map(GBDTConfig.load(path:)) ?? GBDTConfig()
        if let seed { request.config.seed = seed }
        request.threads = threads
        request.layout = options.layout
        request.read = try options.data.readOptions()
        request.read.dayColumn = options.dayColumn
        request.force = force
        let json = self.json || quiet
        let model = try GBDTJobs.train(request, note: { if !json { Terminal.note($0) } }) { p in
            guard !json else { return }
            var line = "[\(p.model)] iteration \(p.iteration)/\(p.maxIterations)"
            if let l = p.validLoss { line += String(format: "  valid logloss %.5f", l) }
            if let b = p.bestLoss { line += String(format: "  best %.5f @%d", b, p.bestIteration) }
            line += String(format: "  %.1f it/s", p.iterationsPerSecond)
            // An upper bound: early stopping usually ends the model sooner.
            line += "  ETA ≤ " + Terminal.duration(Double(p.maxIterations - p.iteration) / max(p.iterationsPerSecond, 1e-9))
            Terminal.progress(line)
        }
        if !json { Terminal.progress("", final: false) }
        if quiet { return }
        let m = model.manifest
        if self.json {
            try Terminal.printJSON(GBDTTrainOutput(out: out, manifest: m, features: model.pipeline.featureNames.count,
                                               peakRSS: ResourceUsage.peakRSSMegabytes))
        } else {
            for c in m.components {
                try Terminal.say("\(c.role.rawValue): \(c.trainRows) rows, best iteration \(c.bestIteration)/\(c.iterations)"
                      + (c.bestValidLogLoss.map { String(format: ", valid logloss %.5f", $0) } ?? "")
                      + String(format: ", %.1fs", c.seconds))
            }
            try Terminal.say(String(format: "calibration ω: two-step %.4f, end-to-end %.4f", m.calibration.twoStep, m.calibration.endToEnd))
            try Terminal.say(GBDTReportTable.render(m.validation, title: "validation rows (\(m.validRows))"))
            try Terminal.say("trained on \(m.trainRows) rows with \(model.pipeline.featureNames.count) features in "
                  + "\(Terminal.duration(m.seconds)); saved to \(out)")
        }
    }
}

struct GBDTTrainOutput: Encodable {
    var out: String
    var manifest: GBDTManifest
    var features: Int
    var peakRSS: Double

    enum CodingKeys: String, CodingKey {
        case out, features, calibration, components, validation, seconds
        case trainRows = "train_rows", validRows = "valid_rows", peakRSS = "peak_rss_mb", readNotes = "read_notes"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(out, forKey: .out)
        try c.encode(features, forKey: .features)
        try c.encode(manifest.calibration, forKey: .calibration)
        try c.encode(manifest.components, forKey: .components)
        try c.encode(manifest.validation, forKey: .validation)
        try c.encode(manifest.seconds, forKey: .seconds)
        try c.encode(manifest.trainRows, forKey: .trainRows)
        try c.encode(manifest.validRows, forKey: .validRows)
        try c.encode(manifest.readNotes, forKey: .readNotes)
        try c.encode(peakRSS, forKey: .peakRSS)
    }
}

struct GBDTPredict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Write p_install (the calibrated ensemble) and its parts for every input row, in input order.")

    @Option(help: "GBDT model directory.") var model: String
    @Option(help: "File in the training layout (labels may be absent).") var data: String
    @Option(help: "Output CSV ('-': standard output).") var out: String
    @Option(parsing: .unconditional, help: "Only rows of this day.") var day: Int?
    @Option(parsing: .unconditional, help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Skip malformed rows (counted and reported) instead of stopping at the first.") var skipBadRows = false
    @Flag(help: "Print a JSON summary.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false

    func validate() throws {
        try refuseManyRanks("gbdt predict")
        try validateThreads(threads)
        guard !(json && out == "-") else { throw ValidationError("--json prints to standard output; give --out a file") }
    }

    func run() throws {
        try guarded {
            let o = try GBDTJobs.predict(model: model, data: data, out: out, day: day, threads: try resolveThreads(threads),
                                         skipBadRows: skipBadRows, force: force)
            if json {
                try Terminal.printJSON(["rows": Double(o.rows), "predict_rows_per_second": o.rowsPerSecond,
                                    "skipped_rows": Double(o.skippedRows)])
            } else {
                for n in o.notes { Terminal.note(n) }
                try Terminal.say("wrote \(o.rows) predictions to \(out) (\(Terminal.rate(o.rowsPerSecond)) rows/s)")
            }
        }
    }
}

struct GBDTEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Log loss and AUC of is_installed for each row of the paper's Table 5 (all rows of --data).")

    @Option(help: "GBDT model directory.") var model: String
    @Option(help: "Labelled file in the training layout.") var data: String
    @Option(parsing: .unconditional, help: "Only rows of this day (e.g. 67, the test day).") var day: Int?
    @Flag(help: "Only rows of the model's test day (its config's split.test_day, 67 by default).") var testDay = false
    @Option(parsing: .unconditional, help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Skip malformed rows (counted and reported) instead of stopping at the first.") var skipBadRows = false
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        try refuseManyRanks("gbdt eval")
        try validateThreads(threads)
        guard !(testDay && day != nil) else { throw ValidationError("give --day or --test-day, not both") }
    }

    func run() throws {
        try guarded {
            let json = self.json
            let (report, only) = try GBDTJobs.evaluate(model: model, data: data, day: day, testDay: testDay,
                                                       threads: try resolveThreads(threads), skipBadRows: skipBadRows) {
                if !json { Terminal.note($0) }
            }
            if json {
                try Terminal.printJSON(report)
            } else {
                try Terminal.say(GBDTReportTable.render(report, title: data + (only.map { " day \($0)" } ?? "")))
            }
        }
    }
}

/// The Table 5 report as text.
enum GBDTReportTable {
    static func render(_ r: GBDTEvaluation, title: String) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.5f", $0) } ?? "  n/a  " }
        var s = "\(r.target) on \(title): \(r.rows) rows, \(r.installs) positives (rate \(String(format: "%.4f", r.installRate)))"
        if let a = r.likeAUC { s += String(format: "; like model AUC on is_like %.5f", a) }
        s += "\n" + "model".padding(toLength: 24, withPad: " ", startingAt: 0) + "logloss    AUC        mean p"
        for row in r.models {
            s += "\n" + row.model.padding(toLength: 24, withPad: " ", startingAt: 0)
                + "\(f(row.logLoss))    \(f(row.auc))    \(String(format: "%.4f", row.meanPrediction))"
        }
        return s
    }
}
