import ArgumentParser
import Foundation
import Funnel

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's tables (embedding rows, pending ids, vocabulary policy per field) and, with --data, what a gated model's gates learned: the mean gate weight on each expert, per task.")

    @Option(help: "Model directory.") var model: String
    @Option(help: "Rows to average the gates over (a model with a mixture-of-experts trunk, e.g. mmoe).") var data: String?
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try guarded {
            BLAS.setThreads(1)
            let trained = try TrainedModel.load(from: model, maxBatch: 4096)
            guard let data else { return try printTables(trained) }
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

    /// Embedding rows, values and pending ids per field, the policy and the clock.
    private func printTables(_ trained: TrainedModel) throws {
        let schema = trained.schema
        let tables = ModelTables(schema, embeddingDim: trained.config.embeddingDim)
        if json { return try Terminal.printJSON(tables) }
        try Terminal.say("\(model): \(trained.config.kind.rawValue), \(schema.embeddingRows) embedding rows "
                         + "(\(String(format: "%.1f", Double(tables.embeddingBytes) / 1e6)) MB of weights)"
                         + (schema.clock.map { ", clock \($0)" } ?? ""))
        if let p = schema.vocabularyPolicy { try Terminal.say("vocabulary policy: \(String(decoding: try JSONEncoder().encode(p), as: UTF8.self))") }
        let width = max(8, schema.fields.map(\.name.count).max() ?? 0) + 2
        try Terminal.say("field".padding(toLength: width, withPad: " ", startingAt: 0) + "     rows   pending  kind")
        for f in tables.fields {
            try Terminal.say(f.name.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "%9d %9d  ", f.rows, f.pending) + f.kind)
        }
    }
}

/// `inspect --json` without --data: a model's tables.
struct ModelTables: Encodable {
    struct Field: Encodable {
        var name: String
        var rows: Int
        var pending: Int
        var kind: String
    }
    var embeddingRows: Int
    var embeddingBytes: Int
    var clock: Int?
    var vocabularyPolicy: VocabularyPolicy?
    var fields: [Field]

    enum CodingKeys: String, CodingKey {
        case fields, clock
        case embeddingRows = "embedding_rows", embeddingBytes = "embedding_bytes", vocabularyPolicy = "vocabulary_policy"
    }

    init(_ schema: FeatureSchema, embeddingDim: Int) {
        embeddingRows = schema.embeddingRows
        embeddingBytes = schema.embeddingRows * embeddingDim * 4
        clock = schema.clock
        vocabularyPolicy = schema.vocabularyPolicy
        fields = schema.fields.map { f in
            Field(name: f.name, rows: f.size, pending: f.pending.count,
                  kind: f.hashBuckets != nil ? "hashed" : f.sharesRowsWith.map { "shares \($0)'s rows" } ?? "vocabulary")
        }
    }
}
