/// What `funnel eval` asks for: one or more models on one labelled file.
public struct EvaluationRequest: Sendable {
    public var models: [String]
    public var data: String
    /// The simulator's truth file aligned with `data`: adds the entire-space CVR metrics.
    public var truth: String?
    public var threads = 1
    /// Keep 1/f of the unclicked rows, weighted f (evaluate as a downsampled model was trained).
    public var downsampleNegatives = 1.0
    public var seed: UInt64 = 1
    public var read = ReadOptions()
    /// A column of `data` grouping its rows (a user, a request): adds the group AUCs.
    public var groupColumn: String?

    public init(models: [String], data: String) {
        self.models = models
        self.data = data
    }
}

/// `funnel eval` as one library call: each model's metrics on `data`, every one on its space.
public enum EvaluationJob {
    public static func run(_ r: EvaluationRequest, note: (String) -> Void = { _ in }) throws -> [(model: String, report: EvaluationReport)] {
        guard !r.models.isEmpty else { throw FunnelError("no model to evaluate") }
        guard r.downsampleNegatives >= 1, r.downsampleNegatives.isFinite else {
            throw FunnelError("the negative downsampling factor must be ≥ 1")
        }
        BLAS.setThreads(1)
        var results: [(String, EvaluationReport)] = []
        for dir in r.models {
            let model = try TrainedModel.load(from: dir, maxBatch: TrainedModel.predictionBatch, workers: r.threads)
            let (full, report) = try DatasetLoader.load(r.data, schema: model.schema, options: r.read, requireLabels: true)
            let encoded = full.downsamplingNegatives(factor: r.downsampleNegatives, seed: r.seed)
            for n in report.notes { note(n) }
            let cf = try r.truth.map { try DatasetLoader.loadCounterfactual($0, for: encoded, dataLines: report.dataLines) }
            if encoded.weights != nil {
                note("evaluating \(encoded.rowCount) of \(full.rowCount) rows (unclicked kept 1 in \(r.downsampleNegatives), weighted)")
            }
            let groups = try r.groupColumn.map { try GroupColumn(r.data, column: $0, options: r.read, layout: model.schema.layout).keys(for: encoded) }
            if let groups, Set(groups).count == 1 { note("\(r.data): every row has the same \(r.groupColumn!): the group AUCs equal the AUCs") }
            let p = model.network.predict(encoded)
            let metrics = EvaluationReport.evaluate(p, on: encoded, counterfactual: cf, groups: groups)
            for warning in metrics.undefinedReasons(p, model: model.config) { note("\(dir): \(warning)") }
            results.append((dir, metrics))
        }
        return results
    }
}
