import ArgumentParser
import Foundation
import Funnel

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate one or more models: AUC and log loss on CTR (all impressions), CVR (clicked) and CTCVR (all).")

    @Option(name: .customLong("model"), help: "Model directory (repeat to compare models on the same data).")
    var models: [String]
    @Option(help: "Labelled CSV/TSV to evaluate on.") var data: String
    @Option(help: "Simulator truth file aligned with --data; adds CVR AUC/log loss over the entire space.")
    var truth: String?
    @Option(help: "A column of --data grouping its rows (a user, a request): adds the group AUCs gauc_ctr, gauc_cvr, gauc_ctcvr.")
    var groupColumn: String?
    @Option(parsing: .unconditional, help: "Threads (default: all cores).") var threads: Int?
    @Option(help: "Keep 1/f of the unclicked rows, weighted f (evaluate as a downsampled model was trained).")
    var downsampleNegatives = 1.0
    @Option(parsing: .unconditional, help: "Seed of the downsampling draw (default: 1).", transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64 = 1
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print JSON (one object; an array when several models are given).") var json = false
    @Option(help: "Refuse, before reading rows, to hold more than this many MiB (a prepared cache is read a row group at a time, keeping about 68 bytes a row).")
    var memoryBudget: Double?

    func validate() throws {
        if let memoryBudget { guard memoryBudget > 0, memoryBudget.isFinite else { throw ValidationError("--memory-budget must be a positive number of MiB") } }
        guard !models.isEmpty else { throw ValidationError("give at least one --model") }
        guard downsampleNegatives >= 1, downsampleNegatives.isFinite else { throw ValidationError("--downsample-negatives must be ≥ 1") }
        try validateThreads(threads)
    }

    /// Under mpirun the ranks share the model's tables and the rows (`DistributedInference`);
    /// rank 0 prints.
    func run() throws {
        try runRanks(explicit: false) { comm, quiet in
            var request = EvaluationRequest(models: models, data: data)
            request.communicator = comm
            request.truth = truth
            request.groupColumn = groupColumn
            request.memoryBudgetMiB = memoryBudget
            request.requestSharing = !dataOptions.noRequestSharing
            request.threads = try resolveThreads(threads)
            request.downsampleNegatives = downsampleNegatives
            request.seed = seed
            request.read = try dataOptions.readOptions()
            let json = self.json
            let results = try EvaluationJob.run(request) { if !json && !quiet { Terminal.note($0) } }
            if quiet { return }
            if json {
                let objects = results.map { NamedReport(model: $0.model, kind: nil, report: $0.report) }
                if objects.count == 1 { try Terminal.printJSON(objects[0]) } else { try Terminal.printJSON(objects) }
            } else {
                try Terminal.say(MetricsTable.render(results.map { ($0.model, $0.report) }, data: data))
            }
        }
    }
}

/// A report with the model it belongs to, flattened into one JSON object.
struct NamedReport: Encodable {
    var model: String
    var kind: String?
    var report: EvaluationReport
    func encode(to encoder: Encoder) throws {
        try report.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(model, forKey: Key(stringValue: "model")!)
    }
    struct Key: CodingKey {
        var stringValue: String
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }
}

/// The terminal table: one row per model, one column group per sample space.
enum MetricsTable {
    static func render(_ results: [(String, EvaluationReport)], data: String) -> String {
        let hasTruth = results.contains { $0.1.aucCVREntireSpace != nil }
        let hasGroups = results.contains { $0.1.groupsGiven }
        var header = ["model", "AUC CTR", "AUC CVR", "AUC CTCVR", "LL CTR", "LL CVR", "LL CTCVR", "KS CTR", "KS CVR", "KS CTCVR"]
        if hasTruth { header += ["AUC CVR-ES", "LL CVR-ES", "CAL CVR-ES"] }
        if hasGroups { header += ["GAUC CTR", "GAUC CVR", "GAUC CTCVR"] }
        var rows: [[String]] = [header]
        for (name, r) in results {
            var row = [name, f(r.aucCTR), f(r.aucCVR), f(r.aucCTCVR), f(r.loglossCTR), f(r.loglossCVR), f(r.loglossCTCVR),
                       f(r[.ksCTR]), f(r[.ksCVR]), f(r[.ksCTCVR])]
            if hasTruth { row += [f(r.aucCVREntireSpace), f(r.loglossCVREntireSpace), f(r[.calibrationCVREntireSpace])] }
            if hasGroups { row += [f(r[.gaucCTR]), f(r[.gaucCVR]), f(r[.gaucCTCVR])] }
            rows.append(row)
        }
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max()! }
        var lines = rows.map { row in
            row.enumerated().map { c, s in c == 0 ? s.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - s.count) + s }.joined(separator: "  ")
        }
        lines.insert(String(repeating: "-", count: lines[0].count), at: 1)
        let r0 = results[0].1
        lines.insert("\(data): \(r0.rows) impressions, \(r0.clicks) clicks, \(r0.conversions) conversions", at: 0)
        lines.append("CTR and CTCVR on all impressions; CVR on clicked impressions"
                     + (hasTruth ? "; CVR-ES: CVR on all impressions against the simulator's counterfactual conversions (CAL: mean pCVR ÷ their mean)" : "")
                     + (hasGroups ? "; GAUC: AUC per group, weighted by its impressions (one-class groups left out)." : "."))
        return lines.joined(separator: "\n")
    }

    static func f(_ v: Double?) -> String { EvaluationReport.format(v) }
}
