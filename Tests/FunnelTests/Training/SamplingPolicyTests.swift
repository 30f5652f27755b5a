import XCTest
@testable import Funnel

/// The sample spaces and weights behind AMAN, OVERSAMPLING, UNBIAS and negative downsampling.
final class SamplingPolicyTests: XCTestCase {
    private let data = randomDataset(rows: 20_000, fields: 2, vocab: 10, dense: 1, seed: 3, clickRate: 0.1, conversionRate: 0.3)

    func testNegativeDownsamplingKeepsClicksAndReweights() {
        let d = data.downsamplingNegatives(factor: 4, seed: 1)
        XCTAssertEqual(d.clickCount, data.clickCount, "every clicked row is kept")
        let unclicked = data.rowCount - data.clickCount
        let kept = d.rowCount - d.clickCount
        XCTAssertEqual(Double(kept), Double(unclicked) / 4, accuracy: Double(unclicked) * 0.02)
        for i in 0..<d.rowCount { XCTAssertEqual(d.weight(i), d.click![i] == 1 ? 1 : 4) }
        // Weighted counts estimate the full data's.
        let weighted = (0..<d.rowCount).reduce(0.0) { $0 + Double(d.weight($1)) }
        XCTAssertEqual(weighted, Double(data.rowCount), accuracy: Double(data.rowCount) * 0.03)
        XCTAssertTrue(data.downsamplingNegatives(factor: 1, seed: 1) === data, "factor 1 is a no-op")
        // Source rows still point into the original file, so truth files stay aligned.
        for i in 0..<20 { XCTAssertEqual(d.click![i], data.click![Int(d.sourceRows[i])]) }
    }

    func testAMANAndOversamplingSpaces() {
        var config = ModelConfig(kind: .aman)
        config.negativeRate = 0.5
        let aman = Trainer.rows(of: .clickedWithSampledNegatives, in: data, config: config, stage: 1)
        let clicked = data.clickedRows
        XCTAssertTrue(Set(clicked).isSubset(of: Set(aman)))
        let negatives = aman.count - clicked.count
        XCTAssertEqual(Double(negatives), Double(data.rowCount - clicked.count) * 0.5, accuracy: 300)
        config.oversample = 5
        let over = Trainer.rows(of: .clickedWithOversampledConversions, in: data, config: config, stage: 1)
        XCTAssertEqual(over.count, clicked.count + 4 * data.conversionCount)
        var copies: [Int32: Int] = [:]
        for r in over { copies[r, default: 0] += 1 }
        for (r, n) in copies { XCTAssertEqual(n, data.conversion![Int(r)] == 1 ? 5 : 1) }
    }

    func testInverseCTRWeightsAreClippedAndNormalised() throws {
        var config = ModelConfig(kind: .unbias)
        config.hidden = [4]; config.embeddingDim = 2; config.batchSize = 500
        let net = FunnelNetwork(config: config, embeddingRows: 20, fields: 2, denseCount: 1)
        let rows = data.clickedRows
        let w = try Trainer.inverseCTRWeights(net, data: data, rows: rows, clip: 0.4)
        let pctr = net.predictCTR(data, rows: rows)
        let mean = rows.reduce(0.0) { $0 + Double(w[Int($1)]) } / Double(rows.count)
        XCTAssertEqual(mean, 1, accuracy: 1e-4)
        // Proportional to 1/max(p, clip): a row's weight × max(p, clip) is the same constant.
        let c0 = Double(w[Int(rows[0])]) * max(Double(pctr[0]), 0.4)
        for (k, r) in rows.enumerated().prefix(200) {
            XCTAssertEqual(Double(w[Int(r)]) * max(Double(pctr[k]), 0.4), c0, accuracy: 1e-4)
        }
        XCTAssertEqual(w[0] == 1 || data.click![0] == 1, true, "rows outside the stage keep weight 1")
    }

    func testClickedEpochsRepeatOnlyTheClickedStages() throws {
        var config = ModelConfig(kind: .base)
        config.hidden = [4]; config.embeddingDim = 2; config.batchSize = 1000; config.clickedEpochs = 3
        let net = FunnelNetwork(config: config, embeddingRows: 20, fields: 2, denseCount: 1)
        var finished: [String: Int] = [:]
        _ = try Trainer(config: config).train(net, on: data, progress: { p in
            if p.epochFinished { finished[p.stage.rawValue, default: 0] += 1 }
        })
        XCTAssertEqual(finished, ["ctr": 1, "cvr": 3])
    }

    func testPRAUCCalibrationAndECEByHand() {
        // Descending: 0.9 (pos) 0.8 (neg) 0.7 (pos) 0.1 (neg): AP = ½·1 + ½·(2/3).
        XCTAssertEqual(Metrics.prAUC(scores: [0.1, 0.9, 0.7, 0.8], labels: [0, 1, 1, 0])!, 0.5 + 1.0 / 3, accuracy: 1e-12)
        // A tie between a positive and a negative at the top counts as one threshold: precision ½.
        XCTAssertEqual(Metrics.prAUC(scores: [0.5, 0.5], labels: [1, 0])!, 0.5, accuracy: 1e-12)
        XCTAssertNil(Metrics.prAUC(scores: [0.5], labels: [0]))
        XCTAssertEqual(Metrics.calibrationRatio(predictions: [0.2, 0.4], labels: [0, 1])!, 0.6, accuracy: 1e-7)
        // Two equal-mass bins: {0.1, 0.2} with labels {0, 0} and {0.6, 0.8} with {1, 0}:
        // ECE = ½·|0.15 − 0| + ½·|0.7 − 0.5| = 0.175.
        XCTAssertEqual(Metrics.expectedCalibrationError(predictions: [0.6, 0.1, 0.8, 0.2], labels: [1, 0, 0, 0], bins: 2)!,
                       0.175, accuracy: 1e-7)
    }
}
