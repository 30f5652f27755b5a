import ArgumentParser
import Foundation
import Funnel

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a gated model's gates learned: the mean gate weight on each expert, per task.")

    @Option(help: "Model directory (a model with a mixture-of-experts trunk, e.g. mmoe).") var model: String
    @Option(help: "Rows to average the gates over.") var data: String
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try guarded {
            BLAS.setThreads(1)
            let trained = try TrainedModel.load(from: model, maxBatch: 4096)
            guard !trained.network.mixtures.isEmpty else {
                throw FunnelError("\(model): model '\(trained.config.kind.rawValue)' (arch \(trained.config.trunk.rawValue)) has no gates to inspect")
            }
            let (encoded, report) = try DatasetLoader.load(data, schema: trained.schema, options: try dataOptions.readOptions(),
                                                           requireLabels: false)
            if !json { for n in report.notes { Terminal.note(n) } }
            let summary = trained.network.gateSummary(encoded)
            if json {
                struct Output: Encodable { var model: String; var rows: Int; var experts: [String]; var gates: [String: [Double]] }
                try Terminal.printJSON(Output(model: model, rows: encoded.rowCount, experts: trained.network.mixtures[0].gateLabels,
                                          gates: Dictionary(uniqueKeysWithValues: summary.map { ($0.head, $0.weights) })))
            } else {
                try Terminal.say("mean gate weight per expert over \(encoded.rowCount) rows of \(data)")
                let labels = trained.network.mixtures[0].gateLabels
                let width = max(10, labels.map(\.count).max()! + 2)
                let first = max(8, summary.map(\.head.count).max()! + 2)
                func row(_ name: String, _ cells: [String]) -> String {
                    name.padding(toLength: first, withPad: " ", startingAt: 0) + cells.map { $0.padding(toLength: width, withPad: " ", startingAt: 0) }.joined()
                }
                try Terminal.say(row("task", labels))
                for (head, w) in summary { try Terminal.say(row(head, w.map { String(format: "%.4f", $0) })) }
                // Grouped experts (TAML: general / task / learner; PLE: task / shared): each group's total weight.
                let groups = labels.map { $0.components(separatedBy: " expert")[0] }
                let names = groups.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                if names.count > 1 && names.count < labels.count {
                    try Terminal.say("\nper group")
                    try Terminal.say(row("task", names))
                    for (head, w) in summary {
                        try Terminal.say(row(head, names.map { g in String(format: "%.4f", zip(groups, w).filter { $0.0 == g }.reduce(0) { $0 + $1.1 }) }))
                    }
                }
            }
        }
    }
}
