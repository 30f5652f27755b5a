import Foundation
import XCTest
@testable import Funnel

/// `funnel replay` and the simulator's id churn it is measured on.
final class ReplayTests: XCTestCase {
    static func simulate(_ dir: String, days: Int, rows: Int, churn: Double) throws {
        var c = SimulatorConfig()
        (c.rows, c.seed, c.days, c.churn, c.vocabScale) = (rows, 5, days, churn, 0.05)
        _ = try FunnelSimulator(config: c).write(to: dir)
    }

    /// With churn, users and items of the last day were mostly never drawn on the first; without
    /// it, the same ids recur.
    func testChurnBringsNewIdsAndRetiresOldOnes() throws {
        func overlap(churn: Double) throws -> Double {
            let dir = makeTempDirectory("churn")
            try Self.simulate(dir, days: 10, rows: 20_000, churn: churn)
            var o = ReadOptions()
            o.dayColumn = "day"
            let raw = try TableSource.readTraining(dir + "/data.csv", options: o)
            let k = raw.layout.categorical.firstIndex(of: "205")!
            let first = Set(raw.filter { $0 == 1 }.keys[k]), last = Set(raw.filter { $0 == 10 }.keys[k])
            return Double(last.intersection(first).count) / Double(last.count)
        }
        let still = try overlap(churn: 0), churned = try overlap(churn: 0.2)
        XCTAssertGreaterThan(still, 0.2)
        XCTAssertLessThan(churned, 0.02, "after 9 days at 20% a day, day 1's items are gone")
    }

    /// Every mode tests each day's model on the next day; the continuous mode's model is exactly
    /// `train` on day 1 continued (`--init-from`, Adam's state carried) on day 2, and the frozen
    /// model stays day 1's.
    func testReplayTestsEachDaysModelOnTheNextDay() throws {
        let dir = makeTempDirectory("replay")
        try Self.simulate(dir, days: 4, rows: 8_000, churn: 0.1)
        var c = ModelConfig(kind: .esmm)
        (c.embeddingDim, c.hidden, c.batchSize) = (4, [8], 500)
        var r = ReplayRequest(data: dir + "/data.csv", config: c, out: dir + "/out")
        (r.truth, r.window) = (dir + "/data_truth.csv", 2)
        let rows = try ReplayJob.run(r)
        XCTAssertEqual(rows.count, 3 * 3)
        XCTAssertEqual(rows.map(\.testDay), [2, 3, 4, 2, 3, 4, 2, 3, 4])
        XCTAssertEqual(rows.filter { $0.mode == .window }.map(\.trainedFrom), [1, 1, 2])
        XCTAssertEqual(Set(rows.filter { $0.mode == .frozen }.map(\.tableRows)).count, 1)
        let continuous = rows.filter { $0.mode == .continuous }.map(\.tableRows)
        XCTAssertEqual(continuous, continuous.sorted(), "new ids arrive every day")
        XCTAssertNotNil(rows[0].metrics[.aucCVREntireSpace])
        // By hand: day 1, then continued on day 2.
        let days = dir + "/out/days"
        var first = TrainingRequest(train: days + "/day-1.csv", out: dir + "/d1", config: c)
        (first.read.dayColumn, first.saveOptimizerState) = ("day", true)
        _ = try TrainingJob.run(first)
        var second = TrainingRequest(train: days + "/day-2.csv", out: dir + "/d2", config: c)
        (second.read.dayColumn, second.initFrom) = ("day", dir + "/d1")
        _ = try TrainingJob.run(second)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/d2/weights.safetensors"),
                       FileManager.default.contents(atPath: dir + "/out/models/continuous/day-2/weights.safetensors"))
        try ReplayReport.write(rows, to: dir + "/out")
        let html = try String(contentsOfFile: dir + "/out/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("<polyline") && html.contains("continuous"))
        XCTAssertTrue(try String(contentsOfFile: dir + "/out/replay.md", encoding: .utf8).contains("| frozen | 1–1 | 4 |"))
    }

    func testBadReplaysAreRefused() throws {
        let dir = makeTempDirectory("replay-bad")
        let one = writeFile(dir, "one.csv", "click,purchase,day,a\n1,0,1,3\n0,0,1,4\n")
        XCTAssertThrowsError(try ReplayJob.run(ReplayRequest(data: one, config: ModelConfig(kind: .esmm), out: dir + "/o"))) {
            XCTAssertTrue("\($0)".contains("two or more days"), "\($0)")
        }
        let bad = writeFile(dir, "bad.csv", "click,purchase,day,a\n1,0,1,3\n0,0,x,4\n")
        XCTAssertThrowsError(try ReplayJob.run(ReplayRequest(data: bad, config: ModelConfig(kind: .esmm), out: dir + "/o"))) {
            XCTAssertTrue("\($0)".contains("bad.csv:3") && "\($0)".contains("not an integer day"), "\($0)")
        }
        let two = writeFile(dir, "two.csv", "click,purchase,day,a\n1,0,1,3\n0,0,2,4\n")
        var misaligned = ReplayRequest(data: two, config: ModelConfig(kind: .esmm), out: dir + "/o")
        misaligned.truth = writeFile(dir, "t.csv", "p_ctr,p_cvr,conversion_if_clicked\n0.1,0.1,0\n")
        XCTAssertThrowsError(try ReplayJob.run(misaligned)) { XCTAssertTrue("\($0)".contains("has 1 data lines; "), "\($0)") }
        var noDay = ReplayRequest(data: one, config: ModelConfig(kind: .esmm), out: dir + "/o")
        noDay.dayColumn = "date"
        XCTAssertThrowsError(try ReplayJob.run(noDay)) { XCTAssertTrue("\($0)".contains("no such column"), "\($0)") }
    }
}
