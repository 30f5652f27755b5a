import Foundation
import XCTest
@testable import Funnel

final class TunerTests: XCTestCase {
    static var dir = ""
    override class func setUp() { dir = simulatedFunnel("funnel-tune", rows: 5000, seed: 3) }
    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func space(_ text: String) throws -> SearchSpace {
        let path = Self.dir + "/space-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try SearchSpace.load(path: path)
    }

    private func request(_ s: SearchSpace, trials: Int, strategy: SearchStrategy, out: String?) -> TuneRequest {
        var base = ModelConfig(kind: .esmm)
        base.embeddingDim = 3; base.hidden = [8]; base.batchSize = 500
        var r = TuneRequest(train: Self.dir + "/train.csv", valid: Self.dir + "/test.csv", base: base, space: s, trials: trials)
        r.strategy = strategy
        r.out = out
        r.seed = 9
        r.concurrency = 2
        return r
    }

    func testSpaceFileSyntaxAndRefusals() throws {
        let s = try space("lr: {min: 0.0001, max: 0.01, log: true}\nbatch_size: [256, 512]\nhidden: {values: [\"16,8\", \"32\"]}\n")
        XCTAssertEqual(s.dimensions.map(\.name), ["batch-size", "hidden", "lr"], "snake_case normalised, name order")
        XCTAssertNil(s.gridSize, "a range has no grid")
        XCTAssertThrowsError(try space("nope: [1]")) { XCTAssertTrue("\($0)".contains("not a tunable flag")) }
        XCTAssertThrowsError(try space("lr: {min: 0.1, max: 0.01}")) { XCTAssertTrue("\($0)".contains("min ≤ max"), "\($0)") }
        XCTAssertThrowsError(try space("batch-size: [0, 10]")) { XCTAssertTrue("\($0)".contains("batch size"), "\($0)") }
        XCTAssertThrowsError(try space("lr: {min: 0, max: 1, log: true}")) { XCTAssertTrue("\($0)".contains("log"), "\($0)") }
        XCTAssertThrowsError(try space("hidden: [\"200,,80\"]"))
        // Random: trial 0 is the base, later trials are deterministic in the seed.
        XCTAssertEqual(try s.trial(0, strategy: .random, seed: 1), [:])
        XCTAssertEqual(try s.trial(3, strategy: .random, seed: 1), try s.trial(3, strategy: .random, seed: 1))
        XCTAssertNotEqual(try s.trial(3, strategy: .random, seed: 1), try s.trial(3, strategy: .random, seed: 2))
        let grid = try space("batch_size: [256, 512]\nhidden: [\"16\", \"32\", \"64\"]\n")
        XCTAssertEqual(grid.gridSize, 6)
        let all = try (0..<6).map { try grid.trial($0, strategy: .grid, seed: 0) }
        XCTAssertEqual(Set(all.map { Tuner.describe($0) }).count, 6, "every combination once")
    }

    /// Same seed → same trials and results; a second run resumes from the saved trials.
    func testRandomAndGridAreDeterministicAndResumable() throws {
        let s = try space("lr: {min: 0.001, max: 0.02, log: true}\nhidden: [\"8\", \"16\"]\n")
        let out = Self.dir + "/random"
        let first = try Tuner.run(request(s, trials: 4, strategy: .random, out: out))
        XCTAssertEqual(first.count, 4)
        XCTAssertEqual(first.map(\.value), first.map(\.value).sorted(), "log loss: best (lowest) first")
        let again = try Tuner.run(request(s, trials: 4, strategy: .random, out: Self.dir + "/random-2"))
        XCTAssertEqual(first.map(\.trial), again.map(\.trial))
        XCTAssertEqual(first.map(\.value), again.map(\.value), "same seed, same results")
        // Remove one saved trial: only it is trained again, with the same result.
        try FileManager.default.removeItem(atPath: out + "/trials/trial-0002.json")
        final class Lines: @unchecked Sendable { var all: [String] = []; let lock = NSLock() }
        let lines = Lines()
        let resumed = try Tuner.run(request(s, trials: 4, strategy: .random, out: out)) { l in lines.lock.withLock { lines.all.append(l) } }
        XCTAssertTrue(lines.all.contains("resuming: 3 trial(s) already done, 1 to go"), "\(lines.all)")
        XCTAssertEqual(resumed.map(\.value), first.map(\.value))
        let best = try Tuner.best(in: out)
        XCTAssertEqual(best.trial, first[0].trial)
        XCTAssertEqual(Tuner.trialCount(in: out), 4)
        // Grid: the combinations of the lists.
        let grid = try Tuner.run(request(try space("hidden: [\"8\", \"16\"]\nbatch-size: [250, 500]\n"), trials: 10, strategy: .grid, out: nil))
        XCTAssertEqual(grid.count, 4, "at most the grid's size")
        XCTAssertThrowsError(try Tuner.run(request(s, trials: 2, strategy: .grid, out: nil))) { XCTAssertTrue("\($0)".contains("grid")) }
    }
}

final class ExperimentReportTests: XCTestCase {
    /// Reliability points within one decade gave the axis an empty range of powers of ten, which
    /// trapped in debug builds and never ended (eating memory) in release builds: `experiment
    /// --runs 1` on a small test set hung after results.md.
    func testReliabilityWithinOneDecade() {
        var r = EvaluationReport(rows: 10, clicks: 2, conversions: 1)
        r.values = [.aucCTCVR: 0.6, .loglossCTCVR: 0.01]
        let bins = [Metrics.ReliabilityBin(meanPrediction: 0.002, observedRate: 0.003, weight: 5),
                    Metrics.ReliabilityBin(meanPrediction: 0.0025, observedRate: 0.002, weight: 5)]
        let run = RunResult(model: "esmm", run: 1, seed: 1, config: nil, trainSeconds: 1, trainSamplesPerSecond: 1, report: r, decay: nil,
                            curves: RunCurves(rocCTCVR: [], reliabilityCTR: [], reliabilityCVR: [], reliabilityCTCVR: bins))
        let summary = ExperimentSummary(results: [run], models: ["esmm"], baseline: "esmm", primaryMetric: .loglossCTCVR)
        let html = ExperimentReport.html(summary: summary, results: [run], title: "t", notes: [])
        XCTAssertTrue(html.contains("aria-label=\"reliability\""))
        XCTAssertLessThan(html.utf8.count, 200_000)
    }
}
