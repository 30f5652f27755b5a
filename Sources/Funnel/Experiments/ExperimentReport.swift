import Foundation

/// `report.html`: one self-contained page (inline SVG and CSS, no script, no network) with the
/// results table, metric bars with ±1 standard-error bars, CTCVR reliability diagrams and CTCVR
/// ROC curves.
public enum ExperimentReport {
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ v: Double, _ d: Int = 4) -> String { String(format: "%.\(d)f", v) }

    /// Writes results.json (summary and every run), results.md and report.html into `dir`, each atomically.
    public static func write(summary: ExperimentSummary, results: [RunResult], notes: [String], to dir: String) throws {
        struct Output: Encodable { var summary: ExperimentSummary; var runs: [RunResult] }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(Output(summary: summary, runs: results)), to: dir + "/results.json")
        try AtomicFile.write(Data(("# Funnel experiment\n\n" + notes.map { "- \($0)\n" }.joined() + "\n" + summary.markdown()).utf8),
                             to: dir + "/results.md")
        try AtomicFile.write(Data(html(summary: summary, results: results, title: "Funnel experiment", notes: notes).utf8),
                             to: dir + "/report.html")
    }

    public static func html(summary: ExperimentSummary, results: [RunResult], title: String, notes: [String]) -> String {
        let models = summary.rows.map(\.model)
        var body = "<h1>\(esc(title))</h1>\n"
        for n in notes { body += "<p class=\"note\">\(esc(n))</p>\n" }
        body += table(summary)
        body += "<h2>Metrics (mean over runs, whiskers: ±1 standard error; value axes truncated)</h2>\n<div class=\"grid\">\n"
        for m in summary.shownMetrics() {
            body += bars(metric: m, summary: summary)
        }
        body += "</div>\n<h2>Reliability of pCTCVR (run 1; equal-mass bins, log axes)</h2>\n"
        body += reliability(results: results, models: models)
        body += "<h2>ROC curves of pCTCVR on all impressions (run 1)</h2>\n"
        body += roc(results: results, models: models)
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title>
            <style>
            body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
            h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
            table { border-collapse: collapse; font-size: 12px; }
            th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
            th:first-child, td:first-child { text-align: left; }
            .note { color: #555; font-size: 13px; margin: 4px 0; }
            .grid { display: flex; flex-wrap: wrap; gap: 12px; }
            svg text { font-size: 11px; fill: #333; }
            .legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
            .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
            </style></head><body>
            \(body)
            </body></html>
            """
    }

    static func table(_ s: ExperimentSummary) -> String {
        let metrics = s.shownMetrics()
        var out = "<div style=\"overflow-x:auto\"><table>\n<tr><th>model</th><th>runs</th>" + metrics.map { "<th>\(esc($0.rawValue))</th>" }.joined()
            + "<th>\(esc(s.primaryMetric.rawValue)) rel. to \(esc(s.baseline))</th><th>better than (p&lt;\(s.significance))</th></tr>\n"
        for r in s.rows {
            out += "<tr><td>\(esc(r.model))</td><td>\(r.runs)</td>"
            for m in metrics {
                out += "<td>\(esc(ExperimentSummary.cell(r[m], se: false)))</td>"
            }
            out += "<td>" + (r.relativeToBaseline.map { "\(f($0.mean)) ± \(f($0.se))" } ?? "") + "</td>"
            out += "<td>\(esc(r.betterThan.joined(separator: ", ")))</td></tr>\n"
        }
        return out + "</table></div>\n"
    }

    static func bars(metric key: MetricKey, summary: ExperimentSummary) -> String {
        let metric = key.rawValue
        let rows = summary.rows.filter { $0[key] != nil }
        guard !rows.isEmpty else { return "" }
        let w = 440.0, h = 250.0, left = 56.0, right = 50.0, bottom = 80.0, top = 24.0
        let lo0 = rows.map { $0[key]!.mean - $0[key]!.se }.min()!
        let hi0 = rows.map { $0[key]!.mean + $0[key]!.se }.max()!
        let pad = max((hi0 - lo0) * 0.15, abs(hi0) * 0.002, 1e-6)
        // Axes are truncated to the data (AUC differences are small); never below zero for ≥ 0 metrics.
        let lo = lo0 >= 0 ? max(0, lo0 - pad) : lo0 - pad, hi = hi0 + pad
        func y(_ v: Double) -> Double { top + (h - top - bottom) * (1 - (v - lo) / (hi - lo)) }
        let slot = (w - left - right) / Double(rows.count)
        var svg = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(esc(metric))\">"
        svg += "<text x=\"\(left)\" y=\"14\" font-weight=\"bold\">\(esc(metric))</text>"
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(w - right)\" y1=\"\(f(y(v), 1))\" y2=\"\(f(y(v), 1))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 4)\" y=\"\(f(y(v) + 4, 1))\" text-anchor=\"end\">\(f(v))</text>"
        }
        for (i, r) in rows.enumerated() {
            let s = r[key]!
            let x = left + slot * Double(i) + slot * 0.15, bw = slot * 0.7
            let color = palette[(summary.rows.firstIndex { $0.model == r.model } ?? i) % palette.count]
            svg += "<rect x=\"\(f(x, 1))\" y=\"\(f(y(s.mean), 1))\" width=\"\(f(bw, 1))\" height=\"\(f(max(0, y(lo) - y(s.mean)), 1))\" fill=\"\(color)\" opacity=\"0.85\"><title>\(esc(r.model)): \(f(s.mean)) ± \(f(s.se)) (se)</title></rect>"
            let cx = x + bw / 2
            svg += "<line x1=\"\(f(cx, 1))\" x2=\"\(f(cx, 1))\" y1=\"\(f(y(s.mean - s.se), 1))\" y2=\"\(f(y(s.mean + s.se), 1))\" stroke=\"#000\"/>"
            for e in [s.mean - s.se, s.mean + s.se] {
                svg += "<line x1=\"\(f(cx - 4, 1))\" x2=\"\(f(cx + 4, 1))\" y1=\"\(f(y(e), 1))\" y2=\"\(f(y(e), 1))\" stroke=\"#000\"/>"
            }
            svg += "<text transform=\"translate(\(f(cx + 3, 1)),\(f(h - bottom + 8, 1))) rotate(50)\">\(esc(r.model))</text>"
        }
        return svg + "</svg>\n"
    }

    static func legend(_ models: [String]) -> String {
        "<div class=\"legend\">" + models.enumerated().map {
            "<span><i style=\"background:\(palette[$0.offset % palette.count])\"></i>\(esc($0.element))</span>"
        }.joined() + "</div>\n"
    }

    static func firstRun(_ results: [RunResult], _ model: String) -> RunResult? {
        results.filter { $0.model == model }.min { $0.run < $1.run }
    }

    static func reliability(results: [RunResult], models: [String]) -> String {
        let size = 420.0, m = 50.0
        let points = models.compactMap { firstRun(results, $0)?.curves.reliabilityCTCVR }.flatMap { $0 }
        let values = points.flatMap { [$0.meanPrediction, $0.observedRate] }.filter { $0 > 0 }
        guard let minV = values.min(), let maxV = values.max() else { return "<p>no reliability data</p>\n" }
        let lo = log10(minV) - 0.1, hi = log10(maxV) + 0.1
        func pos(_ v: Double) -> Double { (log10(max(v, pow(10, lo))) - lo) / (hi - lo) * (size - 2 * m) }
        var svg = "<svg width=\"\(Int(size))\" height=\"\(Int(size))\" role=\"img\" aria-label=\"reliability\">"
        svg += "<rect x=\"\(m)\" y=\"\(m / 2)\" width=\"\(size - 2 * m)\" height=\"\(size - 2 * m)\" fill=\"none\" stroke=\"#999\"/>"
        svg += "<line x1=\"\(m)\" y1=\"\(size - 1.5 * m)\" x2=\"\(size - m)\" y2=\"\(m / 2)\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>"
        // Powers of ten inside the axis; none when the data spans less than a decade (an empty
        // `a...b` with a > b traps in debug builds and never ends in -Ounchecked ones).
        let decades = Int(ceil(lo)) <= Int(floor(hi)) ? Array(Int(ceil(lo))...Int(floor(hi))) : []
        for e in decades {
            let p = pos(pow(10, Double(e)))
            svg += "<text x=\"\(f(m + p, 1))\" y=\"\(f(size - 1.5 * m + 14, 1))\" text-anchor=\"middle\">1e\(e)</text>"
            svg += "<text x=\"\(f(m - 4, 1))\" y=\"\(f(size - 1.5 * m - p + 4, 1))\" text-anchor=\"end\">1e\(e)</text>"
        }
        svg += "<text x=\"\(size / 2)\" y=\"\(size - 12)\" text-anchor=\"middle\">mean predicted pCTCVR</text>"
        svg += "<text transform=\"translate(12,\(size / 2)) rotate(-90)\" text-anchor=\"middle\">observed CTCVR rate</text>"
        for (i, model) in models.enumerated() {
            guard let bins = firstRun(results, model)?.curves.reliabilityCTCVR, !bins.isEmpty else { continue }
            let color = palette[i % palette.count]
            let pts = bins.map { "\(f(m + pos($0.meanPrediction), 1)),\(f(size - 1.5 * m - pos($0.observedRate), 1))" }
            svg += "<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"><title>\(esc(model))</title></polyline>"
            for p in pts {
                let xy = p.split(separator: ",")
                svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.5\" fill=\"\(color)\"/>"
            }
        }
        return svg + "</svg>\n" + legend(models)
    }

    static func roc(results: [RunResult], models: [String]) -> String {
        let size = 420.0, m = 50.0
        var svg = "<svg width=\"\(Int(size))\" height=\"\(Int(size))\" role=\"img\" aria-label=\"roc\">"
        let inner = size - 2 * m
        svg += "<rect x=\"\(m)\" y=\"\(m / 2)\" width=\"\(inner)\" height=\"\(inner)\" fill=\"none\" stroke=\"#999\"/>"
        svg += "<line x1=\"\(m)\" y1=\"\(m / 2 + inner)\" x2=\"\(m + inner)\" y2=\"\(m / 2)\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>"
        for k in 0...4 {
            let v = Double(k) / 4
            svg += "<text x=\"\(f(m + v * inner, 1))\" y=\"\(f(m / 2 + inner + 14, 1))\" text-anchor=\"middle\">\(f(v, 2))</text>"
            svg += "<text x=\"\(f(m - 4, 1))\" y=\"\(f(m / 2 + inner - v * inner + 4, 1))\" text-anchor=\"end\">\(f(v, 2))</text>"
        }
        svg += "<text x=\"\(size / 2)\" y=\"\(size - 12)\" text-anchor=\"middle\">false-positive rate</text>"
        svg += "<text transform=\"translate(12,\(size / 2)) rotate(-90)\" text-anchor=\"middle\">true-positive rate</text>"
        for (i, model) in models.enumerated() {
            guard let curve = firstRun(results, model)?.curves.rocCTCVR, !curve.isEmpty else { continue }
            let pts = curve.map { "\(f(m + $0[0] * inner, 1)),\(f(m / 2 + inner - $0[1] * inner, 1))" }
            svg += "<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"1.5\"><title>\(esc(model))</title></polyline>"
        }
        return svg + "</svg>\n" + legend(models)
    }
}
