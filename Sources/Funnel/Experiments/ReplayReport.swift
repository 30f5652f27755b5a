import Foundation

/// `funnel replay`'s outputs: `replay.json` (every row), `replay.md` (the table and a summary of
/// the late days) and `report.html` (the same, with line plots of AUC and table rows per day).
public enum ReplayReport {
    /// The metric plotted and summarised: CVR on the entire space when the truth was given.
    static func headline(_ rows: [ReplayRow]) -> MetricKey {
        rows.contains { $0.metrics[.aucCVREntireSpace] != nil } ? .aucCVREntireSpace : .aucCTCVR
    }

    public static func write(_ rows: [ReplayRow], to dir: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(rows), to: dir + "/replay.json")
        try AtomicFile.write(Data(markdown(rows).utf8), to: dir + "/replay.md")
        try AtomicFile.write(Data(html(rows).utf8), to: dir + "/report.html")
    }

    /// Per mode, over the later half of the test days: mean of each AUC, training seconds in
    /// all, and the table rows on the last day.
    public struct Summary: Codable, Sendable {
        public var mode: ReplayMode
        public var lateDays: ClosedRange<Int>
        public var meanAUC: [String: Double]
        public var trainSeconds: Double
        public var lastTableRows: Int
    }

    public static func summaries(_ rows: [ReplayRow]) -> [Summary] {
        let days = Set(rows.map(\.testDay)).sorted()
        guard let lastDay = days.last else { return [] }
        let late = days[(days.count / 2)...].first!...lastDay
        let keys: [MetricKey] = [.aucCTR, .aucCVR, .aucCTCVR, .aucCVREntireSpace]
        return ReplayMode.allCases.compactMap { mode in
            let mine = rows.filter { $0.mode == mode }
            guard let last = mine.last else { return nil }
            var means: [String: Double] = [:]
            for k in keys {
                let v = mine.filter { late.contains($0.testDay) }.compactMap { $0.metrics[k] }
                if !v.isEmpty { means[k.rawValue] = v.reduce(0, +) / Double(v.count) }
            }
            return Summary(mode: mode, lateDays: late, meanAUC: means, trainSeconds: mine.reduce(0) { $0 + $1.trainSeconds },
                           lastTableRows: last.tableRows)
        }
    }

    public static func markdown(_ rows: [ReplayRow]) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "—" }
        var md = "| mode | trained on days | test day | AUC CTR | AUC CVR | AUC CTCVR | AUC CVR-ES | table rows | model MB | train s |\n"
        md += "|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            md += "| \(r.mode.rawValue) | \(r.trainedFrom)–\(r.trainedThrough) | \(r.testDay) | \(f(r.metrics.aucCTR)) | \(f(r.metrics.aucCVR)) | "
                + "\(f(r.metrics.aucCTCVR)) | \(f(r.metrics[.aucCVREntireSpace])) | \(r.tableRows) | "
                + String(format: "%.1f | %.1f |\n", Double(r.modelBytes) / 1e6, r.trainSeconds)
        }
        md += "\n| mode | late test days | mean AUC CTCVR | mean AUC CVR-ES | train s (all days) | table rows (last day) |\n|---|---|---|---|---|---|\n"
        for s in summaries(rows) {
            md += "| \(s.mode.rawValue) | \(s.lateDays.lowerBound)–\(s.lateDays.upperBound) | \(f(s.meanAUC["auc_ctcvr"])) | "
                + "\(f(s.meanAUC["auc_cvr_entire_space"])) | " + String(format: "%.1f", s.trainSeconds) + " | \(s.lastTableRows) |\n"
        }
        return md
    }

    static func html(_ rows: [ReplayRow]) -> String {
        let key = headline(rows)
        let metric = lines(rows, title: key.rawValue.replacingOccurrences(of: "_", with: " ") + " on the next day") { $0.metrics[key] }
        let tables = lines(rows, title: "embedding rows") { Double($0.tableRows) }
        let table = markdown(rows).split(separator: "\n").filter { !$0.hasPrefix("|---") }.map { line -> String in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
            return "<tr>" + cells.map { "<td>\(ExperimentReport.esc($0.trimmingCharacters(in: .whitespaces)))</td>" }.joined() + "</tr>"
        }.joined(separator: "\n")
        return """
        <!doctype html><html><head><meta charset="utf-8"><title>funnel replay</title>
        <style>body { font-family: sans-serif; margin: 2em; } td { padding: 2px 8px; border-bottom: 1px solid #eee; }
        svg text { font-size: 11px; fill: #333; }</style></head><body>
        <h1>Does continuous training pay?</h1>
        <p>Each day's model (continuous: yesterday's continued on today; window: retrained on the last days; frozen: the first day's) tested on the next day.</p>
        \(metric)\(tables)
        <table>\(table)</table></body></html>
        """
    }

    /// One polyline per mode of `value` against the test day.
    static func lines(_ rows: [ReplayRow], title: String, value: (ReplayRow) -> Double?) -> String {
        let points = rows.compactMap { r in value(r).map { (r.mode, Double(r.testDay), $0) } }
        guard let x0 = points.map(\.1).min(), let x1 = points.map(\.1).max(), var lo = points.map(\.2).min(), var hi = points.map(\.2).max() else { return "" }
        if hi - lo < 1e-9 { (lo, hi) = (lo - 1, hi + 1) }
        let (w, h, left, right, top, bottom) = (560.0, 240.0, 64.0, 110.0, 24.0, 28.0)
        func x(_ v: Double) -> Double { left + (w - left - right) * (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) }
        func y(_ v: Double) -> Double { top + (h - top - bottom) * (1 - (v - lo) / (hi - lo)) }
        let f = { (v: Double) in String(format: "%.1f", v) }
        var svg = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(ExperimentReport.esc(title))\">"
        svg += "<text x=\"\(left)\" y=\"14\" font-weight=\"bold\">\(ExperimentReport.esc(title))</text>"
        for v in [lo, (lo + hi) / 2, hi] {
            svg += "<text x=\"\(left - 4)\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(String(format: hi > 100 ? "%.0f" : "%.4f", v))</text>"
        }
        svg += "<text x=\"\(f(x(x0)))\" y=\"\(f(h - 8))\">day \(Int(x0))</text><text x=\"\(f(x(x1)))\" y=\"\(f(h - 8))\" text-anchor=\"end\">day \(Int(x1))</text>"
        for (i, mode) in ReplayMode.allCases.enumerated() {
            let pts = points.filter { $0.0 == mode }.map { "\(f(x($0.1))),\(f(y($0.2)))" }
            guard !pts.isEmpty else { continue }
            let color = ["#1f77b4", "#ff7f0e", "#7f7f7f"][i]
            svg += "<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"/>"
            svg += "<text x=\"\(f(w - right + 8))\" y=\"\(f(top + 14 * Double(i + 1)))\" fill=\"\(color)\">\(mode.rawValue)</text>"
        }
        return svg + "</svg>\n"
    }
}
