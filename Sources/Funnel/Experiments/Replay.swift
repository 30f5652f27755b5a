import Foundation

/// How a replay keeps its model up to date, day by day.
public enum ReplayMode: String, Codable, CaseIterable, Sendable {
    /// Day d continues day d−1's model on day d's rows (`train --init-from`, Adam's state carried,
    /// the vocabulary policy applied) — what production does.
    case continuous
    /// Day d trains from scratch on the last `window` days d−W+1…d.
    case window
    /// The first day's model, never retrained.
    case frozen
}

/// `funnel replay`: does continuous training pay? Over a day-stamped file, for each day d of
/// `days` but the last, each mode's model of day d is tested on day d+1.
public struct ReplayRequest: Sendable {
    public var data: String
    /// The simulator's truth file aligned with `data` (adds CVR on the entire space).
    public var truth: String?
    public var dayColumn = "day"
    public var config: ModelConfig
    public var modes: [ReplayMode] = ReplayMode.allCases
    public var window = 7
    /// The days to replay (default: every day of the file).
    public var days: ClosedRange<Int>?
    public var out: String
    public var threads = 1
    /// Read options for every run (the continuous mode's vocabulary policy among them).
    public var read = ReadOptions()
    public var minCount = 1

    public init(data: String, config: ModelConfig, out: String) {
        self.data = data
        self.config = config
        self.out = out
    }
}

/// One model tested on one day.
public struct ReplayRow: Codable, Sendable {
    public var mode: ReplayMode
    /// The model's last training day, the first, and the day it is tested on.
    public var trainedThrough: Int
    public var trainedFrom: Int
    public var testDay: Int
    /// Wall seconds of this day's training (0 for the frozen model after its first day).
    public var trainSeconds: Double
    public var tableRows: Int
    /// Weights and vocabulary file of the model directory.
    public var modelBytes: Int
    public var metrics: EvaluationReport

    enum CodingKeys: String, CodingKey {
        case mode, metrics
        case trainedThrough = "trained_through", trainedFrom = "trained_from", testDay = "test_day"
        case trainSeconds = "train_seconds", tableRows = "table_rows", modelBytes = "model_bytes"
    }
}

public enum ReplayJob {
    public static func run(_ r: ReplayRequest, note: @escaping (String) -> Void = { _ in }) throws -> [ReplayRow] {
        guard r.window >= 1 else { throw FunnelError("the replay window must be at least one day") }
        try r.config.validate()
        let split = try DaySplit.split(r.data, truth: r.truth, dayColumn: r.dayColumn, into: r.out + "/days")
        guard let all = split.dayRange else { throw DataError(file: r.data, "has no rows") }
        let days = r.days ?? all
        guard days.lowerBound < days.upperBound, days.allSatisfy({ split.days[$0] != nil }) else {
            throw FunnelError("replay days \(days.lowerBound)-\(days.upperBound): need two or more days, each with rows in \(r.data) (it has \(all.lowerBound)-\(all.upperBound))")
        }
        var rows: [ReplayRow] = []
        for mode in r.modes {
            for d in days.lowerBound..<days.upperBound {
                let row = try step(mode, day: d, first: days.lowerBound, split: split, request: r)
                note("\(mode.rawValue) day \(d) → \(d + 1): AUC ctcvr \(EvaluationReport.format(row.metrics.aucCTCVR)), "
                     + "\(row.tableRows) rows, trained in \(String(format: "%.1f", row.trainSeconds)) s")
                rows.append(row)
            }
        }
        return rows
    }

    /// Mode `mode`'s model after day `d` (trained now, or the frozen one), tested on day d+1.
    private static func step(_ mode: ReplayMode, day d: Int, first: Int, split: DaySplit, request r: ReplayRequest) throws -> ReplayRow {
        let dir = r.out + "/models/\(mode.rawValue)"
        let model = dir + "/day-\(d)"
        var from = d, seconds = 0.0
        switch mode {
        case .continuous:
            seconds = try train(split.days[d]!.data, out: model, request: r, continuing: d > first ? dir + "/day-\(d - 1)" : nil)
            from = first
        case .window:
            from = max(first, d - r.window + 1)
            let file = try split.concatenated(from...d, to: r.out + "/days/window-\(from)-\(d).csv")
            seconds = try train(file, out: model, request: r, continuing: nil)
            try FileManager.default.removeItem(atPath: file)
        case .frozen:
            from = first
            if d == first { seconds = try train(split.days[d]!.data, out: model, request: r, continuing: nil) }
        }
        let saved = mode == .frozen ? dir + "/day-\(first)" : model
        var eval = EvaluationRequest(models: [saved], data: split.days[d + 1]!.data)
        (eval.truth, eval.threads, eval.read) = (split.days[d + 1]!.truth, r.threads, r.read)
        (eval.read.vocabularyPolicy, eval.read.dayColumn) = (nil, r.dayColumn)
        let report = try EvaluationJob.run(eval)[0].report
        let loaded = try TrainedModel.manifest(in: saved)
        let bytes = ["weights.safetensors", VocabularyFile.fileName].reduce(0) { $0 + InputFile.size(saved + "/" + $1) }
        return ReplayRow(mode: mode, trainedThrough: mode == .frozen ? first : d, trainedFrom: from, testDay: d + 1,
                         trainSeconds: seconds, tableRows: loaded.schema.embeddingRows, modelBytes: bytes, metrics: report)
    }

    /// Trains one model directory; its wall seconds.
    private static func train(_ file: String, out: String, request r: ReplayRequest, continuing previous: String?) throws -> Double {
        var t = TrainingRequest(train: file, out: out, config: r.config)
        (t.threads, t.read, t.minCount, t.initFrom, t.force) = (r.threads, r.read, r.minCount, previous, true)
        t.saveOptimizerState = true
        t.read.dayColumn = r.dayColumn  // the day is when a row happened, never a feature
        if var p = t.read.vocabularyPolicy { p.dayColumn = r.dayColumn; t.read.vocabularyPolicy = p }
        let start = Date()
        _ = try TrainingJob.run(t)
        return Date().timeIntervalSince(start)
    }
}
