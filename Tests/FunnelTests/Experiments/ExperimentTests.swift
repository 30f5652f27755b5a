import XCTest
@testable import Funnel

final class ExperimentTests: XCTestCase {
    private func smallExperiment(directory: String?, models: [ModelKind] = [.esmm, .ip, .esp], ctcvr: CTCVRProtocol = .sharedCTR) throws -> (ExperimentRunner, [RunResult], [String]) {
        let train = randomDataset(rows: 1200, fields: 3, vocab: 8, dense: 2, seed: 1, clickRate: 0.3)
        let test = randomDataset(rows: 400, fields: 3, vocab: 8, dense: 2, seed: 2, clickRate: 0.3)
        let layout = TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: ["a", "b", "c"], dense: ["x", "y"], ignored: [])
        let schema = FeatureSchema(layout: layout, minCount: 1,
                                   fields: ["a", "b", "c"].map { FieldVocabulary(name: $0, values: (1...7).map(String.init)) },
                                   dense: [DenseStatistics(name: "x", mean: 0, std: 1), DenseStatistics(name: "y", mean: 0, std: 1)])
        let cf = (0..<400).map { Float($0 % 7 == 0 ? 1 : 0) }
        let plan = ExperimentPlan(models: models, runs: 2, baseSeed: 0, ctcvrProtocol: ctcvr, concurrency: 2) { kind, seed in
            var c = ModelConfig(kind: kind)
            c.hidden = [8]; c.embeddingDim = 3; c.batchSize = 200; c.seed = seed
            return c
        }
        let runner = ExperimentRunner(plan: plan, data: ExperimentData(schema: schema, train: train, test: test, truth: cf),
                                      directory: directory)
        let lines = LineSink()
        let results = try runner.run { lines.append($0) }
        return (runner, results, lines.lines)
    }

    final class LineSink: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var lines: [String] = []
        func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    }

    func testRunsSummaryResumeAndReport() throws {
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, results, lines) = try smallExperiment(directory: dir)
        XCTAssertEqual(results.count, 6)
        XCTAssertEqual(lines.filter { $0.contains(" run ") && $0.hasPrefix("[") }.count, 6, "one progress line per run")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/runs").filter { $0.hasSuffix(".json") }.count, 6)
        // Resume: nothing is trained again, and the results are the saved ones.
        let (_, again, againLines) = try smallExperiment(directory: dir)
        XCTAssertTrue(againLines.contains("resuming: 6 run(s) already done, 0 to go"), "\(againLines)")
        XCTAssertEqual(again.map(\.report.aucCTCVR), results.map(\.report.aucCTCVR))
        // A deleted run is the only one redone.
        try FileManager.default.removeItem(atPath: dir + "/runs/esmm-2.json")
        let (_, third, thirdLines) = try smallExperiment(directory: dir)
        XCTAssertTrue(thirdLines.contains("resuming: 5 run(s) already done, 1 to go"), "\(thirdLines)")
        XCTAssertEqual(third.first { $0.model == "esmm" && $0.run == 2 }?.report.aucCTCVR,
                       results.first { $0.model == "esmm" && $0.run == 2 }?.report.aucCTCVR, "same seed, same result")
        // A saved run made with other hyperparameters is refused, not mixed in.
        let path = dir + "/runs/ip-1.json"
        var json = String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self)
        json = json.replacingOccurrences(of: "\"embedding_dim\":3", with: "\"embedding_dim\":4")
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try smallExperiment(directory: dir)) { XCTAssertTrue("\($0)".contains("other hyperparameters"), "\($0)") }

        let summary = ExperimentSummary(results: results, models: ["esmm", "ip", "esp"], baseline: "ip", primaryMetric: .loglossCTCVR)
        let ip = summary.rows.first { $0.model == "ip" }!
        XCTAssertEqual(ip.relativeToBaseline!.mean, 1, accuracy: 0.05, "the baseline is ≈ 1 relative to itself")
        XCTAssertNil(summary.rows.first { $0.model == "esp" }![.aucCTR], "ESP predicts no CTR")
        XCTAssertTrue(summary.markdown().contains("| esmm | 2 |"))
        let html = ExperimentReport.html(summary: summary, results: results, title: "t", notes: ["n"])
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertFalse(html.contains("<script"), "no JavaScript")
        XCTAssertFalse(html.contains("http://") || html.contains("https://"), "no network resources")
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: "<svg").count - 1, 6, "bars, reliability and ROC charts")
        XCTAssertTrue(html.contains("aria-label=\"roc\"") && html.contains("aria-label=\"reliability\""))
        XCTAssertTrue(html.contains("<table>"))
    }

    func testSharedCTRProtocolReplacesOnlyTheCTCVRMetrics() throws {
        let (_, shared, _) = try smallExperiment(directory: nil, models: [.esmm, .ip, .esp], ctcvr: .sharedCTR)
        let (_, own, _) = try smallExperiment(directory: nil, models: [.esmm, .ip, .esp], ctcvr: .own)
        func find(_ rs: [RunResult], _ m: String) -> RunResult { rs.first { $0.model == m && $0.run == 1 }! }
        // The shared CTR network is IP's CTR network at the same seed, so IP's pCTCVR is unchanged…
        XCTAssertEqual(find(shared, "ip").report.aucCTCVR!, find(own, "ip").report.aucCTCVR!, accuracy: 1e-9)
        // …ESMM's pCTCVR now uses another pCTR, while its own CTR and CVR metrics stay the same…
        XCTAssertEqual(find(shared, "esmm").report.aucCTR, find(own, "esmm").report.aucCTR)
        XCTAssertEqual(find(shared, "esmm").report.aucCVR, find(own, "esmm").report.aucCVR)
        XCTAssertNotEqual(find(shared, "esmm").report.loglossCTCVR, find(own, "esmm").report.loglossCTCVR)
        // …and ESP, which has no pCVR, keeps its own pCTCVR.
        XCTAssertEqual(find(shared, "esp").report.loglossCTCVR, find(own, "esp").report.loglossCTCVR)
    }
}
