import XCTest
@testable import Funnel

final class MetricsTests: XCTestCase {
    func testAUCHandComputedCases() {
        // Pairs (pos, neg): (0.35,0.1) ✓ (0.35,0.4) ✗ (0.8,0.1) ✓ (0.8,0.4) ✓ → 3/4.
        XCTAssertEqual(Metrics.auc(scores: [0.1, 0.4, 0.35, 0.8], labels: [0, 0, 1, 1])!, 0.75, accuracy: 1e-12)
        XCTAssertEqual(Metrics.auc(scores: [0.1, 0.2, 0.3], labels: [0, 1, 1])!, 1.0)
        XCTAssertEqual(Metrics.auc(scores: [0.9, 0.2, 0.3], labels: [0, 1, 1])!, 0.0)
    }

    func testAUCTiesCountHalf() {
        XCTAssertEqual(Metrics.auc(scores: [0.5, 0.5], labels: [1, 0])!, 0.5)
        // pos 0.5 vs negs {0.5 (tie), 0.2 (win)}; pos 0.7 vs both (win, win) → (0.5 + 1 + 1 + 1)/4.
        XCTAssertEqual(Metrics.auc(scores: [0.5, 0.5, 0.2, 0.7], labels: [1, 0, 0, 1])!, 0.875, accuracy: 1e-12)
        // All scores equal: every pair is a tie.
        XCTAssertEqual(Metrics.auc(scores: [0.3, 0.3, 0.3, 0.3, 0.3], labels: [1, 0, 1, 0, 0])!, 0.5, accuracy: 1e-12)
    }

    func testAUCWeightsEqualDuplication() {
        let scores: [Float] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.2]
        let labels: [Float] = [0, 0, 1, 1, 1, 0]
        let weights: [Float] = [2, 1, 3, 1, 2, 1]
        var dupS: [Float] = [], dupL: [Float] = []
        for i in 0..<scores.count { for _ in 0..<Int(weights[i]) { dupS.append(scores[i]); dupL.append(labels[i]) } }
        XCTAssertEqual(Metrics.auc(scores: scores, labels: labels, weights: weights)!,
                       Metrics.auc(scores: dupS, labels: dupL)!, accuracy: 1e-12)
        // By hand: positives 0.35(w3), 0.8(w1), 0.4(w2); negatives 0.1(w2), 0.4(w1), 0.2(w1); W+W− = 6·4 = 24.
        // 0.35: beats 0.1, 0.2 → 3·3 = 9; 0.8: beats all → 4; 0.4: beats 0.1, 0.2 (3), ties 0.4 (0.5) → 2·3.5 = 7.
        XCTAssertEqual(Metrics.auc(scores: scores, labels: labels, weights: weights)!, 20.0 / 24.0, accuracy: 1e-12)
    }

    func testAUCUndefinedForSingleClass() {
        XCTAssertNil(Metrics.auc(scores: [0.1, 0.2], labels: [0, 0]))
        XCTAssertNil(Metrics.auc(scores: [0.1, 0.2], labels: [1, 1]))
        XCTAssertNil(Metrics.auc(scores: [], labels: []))
        XCTAssertNil(Metrics.auc(scores: [0.1, 0.2], labels: [1, 0], weights: [1, 0]), "zero-weight negatives leave one class")
        XCTAssertEqual(EvaluationReport.format(nil), "undefined")
    }

    func testLogLoss() {
        XCTAssertEqual(Metrics.logLoss(predictions: [0.5, 0.5], labels: [1, 0])!, log(2), accuracy: 1e-9)
        let expected = -(log(0.8) + log(1 - 0.3)) / 2
        XCTAssertEqual(Metrics.logLoss(predictions: [0.8, 0.3], labels: [1, 0])!, expected, accuracy: 1e-7)
        // Weighted: weight 3 on the first row.
        let weighted = -(3 * log(0.8) + log(0.7)) / 4
        XCTAssertEqual(Metrics.logLoss(predictions: [0.8, 0.3], labels: [1, 0], weights: [3, 1])!, weighted, accuracy: 1e-7)
        // Clamped, so a confident mistake is large but finite.
        XCTAssertEqual(Metrics.logLoss(predictions: [0], labels: [1])!, -log(1e-7), accuracy: 1e-3)
        XCTAssertNil(Metrics.logLoss(predictions: [], labels: []))
    }

    func testEvaluationSpaces() {
        // 6 impressions, 3 clicks, 1 conversion. CVR is judged on the clicked rows only.
        let data = EncodedDataset(rowCount: 6, fields: 0, denseCount: 0, ids: [], dense: [],
                                  click: [1, 1, 0, 1, 0, 0], conversion: [1, 0, 0, 0, 0, 0],
                                  sourceRows: (0..<6).map { Int32($0) })
        var p = Predictions(count: 6)
        p.ctr = [0.9, 0.6, 0.5, 0.7, 0.1, 0.2]
        p.cvr = [0.8, 0.3, 0.99, 0.4, 0.99, 0.99]  // high pCVR on unclicked rows must not matter for CVR AUC
        p.ctcvr = zip(p.ctr, p.cvr).map { $0 * $1 }
        let r = EvaluationReport.evaluate(p, on: data, counterfactual: [1, 0, 1, 0, 1, 0])
        XCTAssertEqual(r.rows, 6); XCTAssertEqual(r.clicks, 3); XCTAssertEqual(r.conversions, 1)
        XCTAssertEqual(r.aucCVR!, 1.0)
        XCTAssertEqual(r.aucCTR!, 1.0)
        XCTAssertEqual(r.aucCTCVR!, 1.0)
        // Entire space: positives {0.8, 0.99, 0.99}, negatives {0.3, 0.4, 0.99}: 3+3+3 wins… minus ties.
        // 0.8 beats 0.3, 0.4, loses to 0.99 → 2; each 0.99 beats 0.3, 0.4, ties 0.99 → 2.5.
        XCTAssertEqual(r.aucCVREntireSpace!, (2 + 2.5 + 2.5) / 9, accuracy: 1e-12)
        let json = String(data: try! JSONEncoder().encode(r), encoding: .utf8)!
        for key in ["auc_ctr", "auc_cvr", "auc_ctcvr", "logloss_ctr", "logloss_cvr", "logloss_ctcvr", "rows", "clicks",
                    "conversions", "auc_cvr_entire_space", "logloss_cvr_entire_space"] {
            XCTAssertTrue(json.contains("\"\(key)\""), key)
        }
    }

    /// KS by hand: scores 0.9 (+), 0.8 (−), 0.7 (+), 0.6 (+), 0.2 (−). Thresholds from the top:
    /// TPR 1/3, 1/3, 2/3, 1, 1 against FPR 0, 1/2, 1/2, 1/2, 1 → the largest gap is 1/2 (at 0.6).
    func testKSHandComputed() {
        let ks = Metrics.ks(scores: [0.9, 0.8, 0.7, 0.6, 0.2], labels: [1, 0, 1, 1, 0])!
        XCTAssertEqual(ks, 0.5, accuracy: 1e-12)
        XCTAssertEqual(Metrics.ks(scores: [0.3, 0.7], labels: [0, 1])!, 1, "perfect separation")
        XCTAssertEqual(Metrics.ks(scores: [0.5, 0.5], labels: [0, 1])!, 0, "a tie is one threshold")
        XCTAssertNil(Metrics.ks(scores: [0.5, 0.4], labels: [1, 1]))
        // A weight of 2 counts as the row twice.
        XCTAssertEqual(Metrics.ks(scores: [0.9, 0.8, 0.2], labels: [1, 0, 0], weights: [1, 2, 1])!,
                       Metrics.ks(scores: [0.9, 0.8, 0.8, 0.2], labels: [1, 0, 0, 0])!, accuracy: 1e-12)
    }

    /// GAUC by hand: group A (3 rows) AUC 1; group B (2 rows) AUC 0; group C all negative (left
    /// out). Weighted by impressions: (3·1 + 2·0) / 5 = 0.6 — while the pooled AUC is another number.
    func testGAUCHandComputed() {
        let scores: [Float] = [0.9, 0.1, 0.2, 0.3, 0.8, 0.5, 0.4]
        let labels: [Float] = [1, 0, 0, 1, 0, 0, 0]
        let groups: [Int64] = [1, 1, 1, 2, 2, 3, 3]
        XCTAssertEqual(Metrics.gauc(scores: scores, labels: labels, groups: groups)!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(Metrics.gauc(scores: scores, labels: labels, groups: groups, weights: [1, 1, 1, 3, 3, 1, 1])!,
                       (3 * 1 + 6 * 0) / 9.0, accuracy: 1e-12, "a group weighs its rows' weights")
        XCTAssertEqual(Metrics.gauc(scores: scores, labels: labels, groups: [Int64](repeating: 7, count: 7)),
                       Metrics.auc(scores: scores, labels: labels), "one group: GAUC is the AUC")
        XCTAssertNil(Metrics.gauc(scores: [0.3, 0.6], labels: [1, 0], groups: [1, 2]), "no group has both classes")
    }

    /// The group AUCs follow each metric's space: CVR's groups are the clicked rows' groups.
    func testGroupAUCsPerSpace() {
        let data = EncodedDataset(rowCount: 6, fields: 0, denseCount: 0, ids: [], dense: [],
                                  click: [1, 1, 0, 1, 1, 0], conversion: [1, 0, 0, 0, 1, 0], sourceRows: (0..<6).map { Int32($0) })
        var p = Predictions(count: 6)
        p.ctr = [0.9, 0.6, 0.5, 0.7, 0.8, 0.2]
        p.cvr = [0.8, 0.3, 0.9, 0.4, 0.1, 0.9]
        p.ctcvr = zip(p.ctr, p.cvr).map { $0 * $1 }
        let r = EvaluationReport.evaluate(p, on: data, groups: [1, 1, 1, 2, 2, 2])
        // CVR, group 1 clicked rows {0 (+, 0.8), 1 (−, 0.3)} → 1; group 2 {3 (−, 0.4), 4 (+, 0.1)} → 0; 2 rows each.
        XCTAssertEqual(r[.gaucCVR]!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(r[.gaucCTR]!, Metrics.gauc(scores: p.ctr, labels: data.click!, groups: [1, 1, 1, 2, 2, 2])!)
        XCTAssertNotNil(r[.ksCTCVR])
    }
}
