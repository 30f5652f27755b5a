import Foundation
import XCTest
@testable import Funnel

final class MetricKeyTests: XCTestCase {
    func testDirectionsSpacesAndScores() {
        XCTAssertEqual(MetricKey.aucCTR.direction, .higherIsBetter)
        XCTAssertEqual(MetricKey.loglossCTCVR.direction, .lowerIsBetter)
        XCTAssertEqual(MetricKey.eceCVR.direction, .lowerIsBetter)
        XCTAssertEqual(MetricKey.calibrationCTCVR.direction, .closerToOne)
        XCTAssertEqual(MetricKey.aucCVR.space, .clicked)
        XCTAssertEqual(MetricKey.aucCTCVR.space, .allImpressions)
        XCTAssertEqual(MetricKey.loglossCVREntireSpace.space, .entireSpaceTruth)
        XCTAssertGreaterThan(MetricKey.aucCTR.score(0.8), MetricKey.aucCTR.score(0.7))
        XCTAssertGreaterThan(MetricKey.loglossCTR.score(0.1), MetricKey.loglossCTR.score(0.2))
        XCTAssertGreaterThan(MetricKey.calibrationCTR.score(0.95), MetricKey.calibrationCTR.score(1.2))
        XCTAssertThrowsError(try MetricKey.named("auc_foo")) { XCTAssertTrue("\($0)".contains("auc_ctr"), "\($0)") }
        XCTAssertEqual(try MetricKey.named("pr_auc_ctcvr"), .prAUCCTCVR)
    }

    /// The JSON keys are the contract of `funnel eval --json` and saved experiment runs.
    func testReportJSONKeysAndRoundTrip() throws {
        var r = EvaluationReport(rows: 10, clicks: 3, conversions: 1)
        r.values = [.aucCTR: 0.7, .loglossCTCVR: 0.05]
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let object = try JSONSerialization.jsonObject(with: try enc.encode(r)) as! [String: Any]
        let expected = ["rows", "clicks", "conversions", "auc_ctr", "auc_cvr", "auc_ctcvr", "logloss_ctr", "logloss_cvr",
                        "logloss_ctcvr", "pr_auc_ctcvr", "calibration_ctr", "calibration_cvr", "calibration_ctcvr",
                        "ece_ctr", "ece_cvr", "ece_ctcvr", "ks_ctr", "ks_cvr", "ks_ctcvr"]
        XCTAssertEqual(Set(object.keys), Set(expected), "undefined metrics are null; entire-space keys only with truth")
        XCTAssertTrue(object["auc_cvr"] is NSNull)
        let back = try JSONDecoder().decode(EvaluationReport.self, from: try enc.encode(r))
        XCTAssertEqual(back.values, r.values)
        r.values[.aucCVREntireSpace] = 0.6
        let withTruth = try JSONSerialization.jsonObject(with: try enc.encode(r)) as! [String: Any]
        XCTAssertEqual(withTruth["auc_cvr_entire_space"] as? Double, 0.6)
        XCTAssertTrue(withTruth["logloss_cvr_entire_space"] is NSNull)
        XCTAssertNil(withTruth["gauc_ctr"], "group AUCs only with a group column")
        r.groupsGiven = true
        let withGroups = try JSONSerialization.jsonObject(with: try enc.encode(r)) as! [String: Any]
        XCTAssertTrue(withGroups["gauc_ctr"] is NSNull && withGroups["gauc_cvr"] is NSNull && withGroups["gauc_ctcvr"] is NSNull)
    }

    /// "Better than" follows the metric's direction: lower log loss, higher AUC.
    func testSummaryTTestsFollowTheDirection() {
        func run(_ model: String, _ i: Int, auc: Double, logloss: Double) -> RunResult {
            var r = EvaluationReport(rows: 100, clicks: 10, conversions: 2)
            r.values = [.aucCTR: auc, .loglossCTR: logloss]
            return RunResult(model: model, run: i, seed: UInt64(i), config: nil, trainSeconds: 1, trainSamplesPerSecond: 1, report: r,
                             decay: nil, curves: RunCurves(rocCTCVR: [], reliabilityCTR: [], reliabilityCVR: [], reliabilityCTCVR: []))
        }
        // a: higher AUC but also higher (worse) log loss than b, with little noise.
        let results = (1...5).flatMap { i in
            [run("a", i, auc: 0.80 + Double(i) * 1e-4, logloss: 0.30 + Double(i) * 1e-4),
             run("b", i, auc: 0.70 + Double(i) * 1e-4, logloss: 0.20 + Double(i) * 1e-4)]
        }
        let byAUC = ExperimentSummary(results: results, models: ["a", "b"], baseline: "b", primaryMetric: .aucCTR)
        XCTAssertEqual(byAUC.rows[0].betterThan, ["b"])
        XCTAssertEqual(byAUC.rows[1].betterThan, [])
        let byLoss = ExperimentSummary(results: results, models: ["a", "b"], baseline: "b", primaryMetric: .loglossCTR)
        XCTAssertEqual(byLoss.rows[0].betterThan, [])
        XCTAssertEqual(byLoss.rows[1].betterThan, ["a"])
        XCTAssertLessThan(byLoss.rows[0].relativeToBaseline!.mean, 1, "baseline / model for a lower-is-better metric")
    }
}

final class UndefinedMetricTests: XCTestCase {
    func testEvalSaysWhyAMetricIsUndefined() {
        var p = Predictions(count: 4)
        p.ctr = [0.1, 0.2, .nan, 0.4]; p.cvr = [0.5, 0.5, 0.5, 0.5]; p.ctcvr = [0.05, 0.1, 0.1, 0.2]
        let esmm = ModelConfig(kind: .esmm)
        var r = EvaluationReport(rows: 4, clicks: 2, conversions: 0)
        XCTAssertEqual(r.undefinedReasons(p, model: esmm), ["1 of 4 pCTR predictions are not finite; its metrics are undefined"])
        p.ctr[2] = 0.3
        r.values = [.aucCTR: 0.6, .aucCTCVR: 0.5]
        XCTAssertEqual(r.undefinedReasons(p, model: esmm), ["auc_cvr undefined: the clicked impressions have a single conversion label (or none)"])
        r.values[.aucCVR] = 0.5
        XCTAssertEqual(r.undefinedReasons(p, model: esmm), [])
    }
}
