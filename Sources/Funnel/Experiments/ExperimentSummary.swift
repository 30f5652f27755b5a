import Foundation

/// Aggregates of an experiment: per model and metric, mean ± std and standard error over runs;
/// cross-entropy relative to the baseline (esmm-ablation Fig. 3); and which models each one
/// beats by a two-sided Welch t-test at p < 0.01 on the primary metric.
public struct ExperimentSummary: Codable, Sendable {
    public struct ModelRow: Codable, Sendable {
        public var model: String
        public var runs: Int
        /// By metric key's JSON name (`MetricKey.rawValue`); read through `self[metric]`.
        public var metrics: [String: Statistics.Summary]
        /// Baseline mean CE / this model's CE on the primary metric, per run summarised: > 1 is better.
        public var relativeToBaseline: Statistics.Summary?
        public var betterThan: [String]
        public var trainSamplesPerSecond: Double
        /// Decay days → metric → summary.
        public var decay: [String: [String: Statistics.Summary]]?

        public subscript(metric: MetricKey) -> Statistics.Summary? { metrics[metric.rawValue] }
    }

    public var primaryMetric: MetricKey
    public var baseline: String
    public var significance: Double
    public var rows: [ModelRow]

    public init(results: [RunResult], models: [String], baseline: String, primaryMetric: MetricKey, significance: Double = 0.01) {
        self.primaryMetric = primaryMetric
        self.baseline = baseline
        self.significance = significance
        var byModel: [String: [RunResult]] = [:]
        for r in results { byModel[r.model, default: []].append(r) }
        func values(_ model: String, _ metric: MetricKey) -> [Double] {
            (byModel[model] ?? []).sorted { $0.run < $1.run }.compactMap { $0.report[metric] }
        }
        let baselineMean = Statistics.summary(values(baseline, primaryMetric))?.mean
        rows = models.map { m in
            let runs = byModel[m] ?? []
            var metrics: [String: Statistics.Summary] = [:]
            let keys = Set(runs.flatMap { $0.report.values.keys })
            for k in keys { metrics[k.rawValue] = Statistics.summary(values(m, k)) }
            var relative: Statistics.Summary?
            if let b = baselineMean {
                let mine = values(m, primaryMetric)
                relative = Statistics.summary(mine.map { primaryMetric.lowerIsBetter ? b / $0 : $0 / b })
            }
            let mine = values(m, primaryMetric)
            var better: [String] = []
            for other in models where other != m {
                let theirs = values(other, primaryMetric)
                guard let p = Statistics.welchTTest(mine, theirs), p < significance,
                      let a = Statistics.summary(mine), let b = Statistics.summary(theirs),
                      primaryMetric.score(a.mean) > primaryMetric.score(b.mean) else { continue }
                better.append(other)
            }
            var decay: [String: [String: Statistics.Summary]]?
            let days = Set(runs.flatMap { $0.decay?.keys.map { $0 } ?? [] })
            if !days.isEmpty {
                decay = [:]
                for d in days {
                    var perMetric: [String: Statistics.Summary] = [:]
                    let reports = runs.compactMap { $0.decay?[d] }
                    for k in Set(reports.flatMap { $0.values.keys }) {
                        perMetric[k.rawValue] = Statistics.summary(reports.compactMap { $0[k] })
                    }
                    decay![d] = perMetric
                }
            }
            let speed = runs.isEmpty ? 0 : runs.reduce(0) { $0 + $1.trainSamplesPerSecond } / Double(runs.count)
            return ModelRow(model: m, runs: runs.count, metrics: metrics, relativeToBaseline: relative, betterThan: better,
                            trainSamplesPerSecond: speed, decay: decay)
        }
    }

    /// The metrics of `metrics` that at least one model has.
    func shownMetrics(_ metrics: [MetricKey] = MetricKey.display) -> [MetricKey] {
        metrics.filter { m in rows.contains { $0[m] != nil } }
    }

    /// Enough decimals for rare-event cross-entropies (CTCVR log loss ≈ 0.01) to show differences.
    static func decimals(_ v: Double) -> Int { abs(v) < 0.01 ? 6 : abs(v) < 0.1 ? 5 : 4 }

    static func cell(_ s: Statistics.Summary?, se: Bool) -> String {
        guard let s else { return "undefined" }
        let d = decimals(s.mean)
        return se ? String(format: "%.\(d)f ± %.\(d)f (se %.\(d)f)", s.mean, s.std, s.se)
            : String(format: "%.\(d)f ± %.\(d)f", s.mean, s.std)
    }

    /// A plain-text table for the terminal.
    public func terminalTable(metrics: [MetricKey] = MetricKey.display) -> String {
        let shown = shownMetrics(metrics)
        var table: [[String]] = [["model", "runs"] + shown.map(\.rawValue) + ["rel. \(primaryMetric.rawValue)", "better than (p<\(significance))"]]
        for r in rows {
            table.append([r.model, String(r.runs)] + shown.map { ExperimentSummary.cell(r[$0], se: false) }
                         + [ExperimentSummary.cell(r.relativeToBaseline, se: false), r.betterThan.joined(separator: ",")])
        }
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max()! }
        var lines = table.map { row in row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
        lines.insert(String(repeating: "-", count: lines[0].count), at: 1)
        return lines.joined(separator: "\n")
    }

    /// GitHub-flavoured Markdown: mean ± std (se) per metric.
    public func markdown(metrics: [MetricKey] = MetricKey.display) -> String {
        let shown = shownMetrics(metrics)
        var out = "| model | runs | " + shown.map(\.rawValue).joined(separator: " | ") + " | \(primaryMetric.rawValue) relative to \(baseline) | better than (Welch t-test, p < \(significance)) |\n"
        out += "|" + String(repeating: "---|", count: shown.count + 4) + "\n"
        for r in rows {
            out += "| \(r.model) | \(r.runs) | " + shown.map { ExperimentSummary.cell(r[$0], se: true) }.joined(separator: " | ")
                + " | \(ExperimentSummary.cell(r.relativeToBaseline, se: true)) | \(r.betterThan.joined(separator: ", ")) |\n"
        }
        let days = Set(rows.flatMap { $0.decay?.keys.map { $0 } ?? [] }).sorted { Int($0)! < Int($1)! }
        if !days.isEmpty {
            out += "\n### Decay: \(primaryMetric.rawValue) on later days (mean ± se)\n\n| model | " + days.map { "day \($0)" }.joined(separator: " | ") + " |\n"
            out += "|" + String(repeating: "---|", count: days.count + 1) + "\n"
            for r in rows {
                out += "| \(r.model) | " + days.map { d in
                    r.decay?[d]?[primaryMetric.rawValue].map { String(format: "%.4f ± %.4f", $0.mean, $0.se) } ?? "undefined"
                }.joined(separator: " | ") + " |\n"
            }
        }
        out += "\nCTR and CTCVR on all impressions; CVR on clicked impressions; `*_entire_space`: CVR on all impressions against the simulator's counterfactual conversions. "
        out += "Relative \(primaryMetric.rawValue): \(primaryMetric.lowerIsBetter ? "baseline mean / model" : "model / baseline mean") per run (> 1 is better).\n"
        return out
    }
}
