import Foundation

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
    /// Refuse, before reading rows, a read that would hold more than this many MiB (`ReadingBudget`).
    public var memoryBudgetMiB: Double?
    /// Compute each request's part once where the rows carry requests (`RequestSharing`);
    /// false: every row on its own (`--no-request-sharing`).
    public var requestSharing = true
    /// Under mpirun: the ranks that share the work (`DistributedInference`); rank 0 gets the reports.
    public var communicator = Communicator.single

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
        if r.communicator.isDistributed { return try DistributedInference.evaluate(r, note: note) }
        var results: [(String, EvaluationReport)] = []
        for dir in r.models {
            let model = try TrainedModel.load(from: dir, maxBatch: TrainedModel.predictionBatch, workers: r.threads)
            if ColumnarCache.isCache(r.data) && r.groupColumn == nil {
                results.append((dir, try streamed(r, model, dir: dir, note: note)))
                continue
            }
            if let budget = r.memoryBudgetMiB { try ReadingBudget.checkWhole(budget, path: r.data, command: "eval") }
            let (full, report) = try DatasetLoader.load(r.data, schema: model.schema, options: r.read, requireLabels: true)
            let encoded = full.downsamplingNegatives(factor: r.downsampleNegatives, seed: r.seed)
            for n in report.notes { note(n) }
            let cf = try r.truth.map { try DatasetLoader.loadCounterfactual($0, for: encoded, dataLines: report.dataLines) }
            if encoded.weights != nil {
                note("evaluating \(encoded.rowCount) of \(full.rowCount) rows (unclicked kept 1 in \(r.downsampleNegatives), weighted)")
            }
            let groups = try r.groupColumn.map { try GroupColumn(r.data, column: $0, options: r.read, layout: model.schema.layout).keys(for: encoded) }
            if let groups, Set(groups).count == 1 { note("\(r.data): every row has the same \(r.groupColumn!): the group AUCs equal the AUCs") }
            if r.requestSharing { model.network.shareRequests(as: encoded) }
            let p = model.network.predict(encoded)
            let metrics = EvaluationReport.evaluate(p, on: encoded, counterfactual: cf, groups: groups)
            for warning in metrics.undefinedReasons(p, model: model.config) { note("\(dir): \(warning)") }
            results.append((dir, metrics))
        }
        return results
    }

    /// A prepared cache, one row group at a time: each group is predicted and dropped, only the
    /// predictions and labels of every row stay (what exact global AUCs need) — memory is the
    /// model, one group and 5 floats per row, whatever the cache's size. The same rows, the same
    /// downsampling draws and the same metrics as reading the cache whole.
    static func streamed(_ r: EvaluationRequest, _ model: TrainedModel, dir: String, note: (String) -> Void) throws -> EvaluationReport {
        let cache = try ColumnarCache(path: r.data)
        if let budget = r.memoryBudgetMiB {
            let truth = Double(r.truth.map(InputFile.size) ?? 0)
            try ReadingBudget.check(budget, cache: cache, keptPerRow: 68, extraBytes: truth, command: "eval")
        }
        var p = Predictions(count: 0), click: [Float] = [], conversion: [Float] = [], sources: [Int32] = []
        let report = try DatasetLoader.forEachGroup(of: cache, schema: model.schema, options: r.read, requireLabels: true,
                                                    requestLevel: r.requestSharing) { encoded in
            if r.requestSharing { model.network.shareRequests(as: encoded) }
            let part = model.network.predict(encoded)
            p.ctr += part.ctr; p.cvr += part.cvr; p.ctcvr += part.ctcvr
            click += encoded.click ?? []; conversion += encoded.conversion ?? []; sources += encoded.sourceRows
        }
        for n in report.notes { note(n) }
        let labels = EncodedDataset(rowCount: click.count, fields: 0, denseCount: 0, ids: [], dense: [], click: click, conversion: conversion,
                                    sourceRows: sources)
        return try metrics(p, labels: labels, dataLines: report.dataLines, r, model, dir: dir, note: note)
    }

    /// The metrics of predictions `p` of the rows `labels` holds (labels and source rows only, in
    /// file order), downsampled and joined with the truth file as the request asks.
    static func metrics(_ p: Predictions, labels: EncodedDataset, dataLines: Int, _ r: EvaluationRequest, _ model: TrainedModel, dir: String,
                        note: (String) -> Void) throws -> EvaluationReport {
        var p = p, labels = labels
        if let (rows, w) = labels.downsampledRows(factor: r.downsampleNegatives, seed: r.seed) {
            note("evaluating \(rows.count) of \(labels.rowCount) rows (unclicked kept 1 in \(r.downsampleNegatives), weighted)")
            labels = labels.subset(rows, weights: w)
            p = Predictions(ctr: rows.map { p.ctr[Int($0)] }, cvr: rows.map { p.cvr[Int($0)] }, ctcvr: rows.map { p.ctcvr[Int($0)] })
        }
        let cf = try r.truth.map { try DatasetLoader.loadCounterfactual($0, for: labels, dataLines: dataLines) }
        let groups = try r.groupColumn.map { try GroupColumn(r.data, column: $0, options: r.read, layout: model.schema.layout).keys(for: labels) }
        let metrics = EvaluationReport.evaluate(p, on: labels, counterfactual: cf, groups: groups)
        for warning in metrics.undefinedReasons(p, model: model.config) { note("\(dir): \(warning)") }
        return metrics
    }
}
