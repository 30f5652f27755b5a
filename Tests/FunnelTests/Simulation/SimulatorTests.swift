import XCTest
@testable import Funnel

final class SimulatorTests: XCTestCase {
    func testRatesTruthAndDeterminism() throws {
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = SimulatorConfig()
        c.rows = 40_000; c.seed = 3; c.ctr = 0.05; c.cvr = 0.1
        let summary = try FunnelSimulator(config: c).write(to: dir)
        XCTAssertEqual(summary.trainRows, 32_000)
        XCTAssertEqual(summary.testRows, 8_000)
        XCTAssertEqual(Double(summary.clicks) / 40_000, 0.05, accuracy: 0.006)
        XCTAssertEqual(Double(summary.conversions) / Double(summary.clicks), 0.1, accuracy: 0.025)
        // Labels agree with the truth: purchase = click · conversion_if_clicked, and the truth covers every row.
        let (schema, data, _) = try DatasetLoader.loadForTraining(dir + "/train.csv", options: ReadOptions(), minCount: 1)
        XCTAssertEqual(schema.layout.conversionColumn, "purchase")
        XCTAssertEqual(schema.fields.count, 15)
        XCTAssertEqual(schema.dense.count, 4)
        let cf = try DatasetLoader.loadCounterfactual(dir + "/train_truth.csv", for: data, dataLines: data.rowCount)
        var counterfactualOnUnclicked = 0
        for i in 0..<data.rowCount {
            XCTAssertEqual(data.conversion![i], data.click![i] * cf[i])
            if data.click![i] == 0 && cf[i] == 1 { counterfactualOnUnclicked += 1 }
        }
        XCTAssertGreaterThan(counterfactualOnUnclicked, 100, "the truth has conversions the logs cannot show")
        let again = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: again) }
        _ = try FunnelSimulator(config: c).write(to: again)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/train.csv"), FileManager.default.contents(atPath: again + "/train.csv"))
        XCTAssertThrowsError(try DatasetLoader.loadCounterfactual(dir + "/test_truth.csv", for: data, dataLines: data.rowCount)) {
            XCTAssertTrue("\($0)".contains("row-aligned"), "\($0)")
        }
    }

    func testSelectionBiasKnobSeparatesDrivers() {
        var c = SimulatorConfig()
        c.rows = 1000
        func correlation(_ bias: Double) -> Double {
            c.selectionBias = bias
            let sim = FunnelSimulator(config: c)
            var rng = RandomSource(seed: 4)
            var xs: [Double] = [], ys: [Double] = []
            for _ in 0..<5000 {
                let i = sim.impression(&rng)
                xs.append(log(i.pCTR / (1 - i.pCTR))); ys.append(log(i.pCVR / (1 - i.pCVR)))
            }
            let mx = xs.reduce(0, +) / 5000, my = ys.reduce(0, +) / 5000
            var sxy = 0.0, sxx = 0.0, syy = 0.0
            for k in 0..<5000 { sxy += (xs[k] - mx) * (ys[k] - my); sxx += (xs[k] - mx) * (xs[k] - mx); syy += (ys[k] - my) * (ys[k] - my) }
            return sxy / (sxx * syy).squareRoot()
        }
        XCTAssertGreaterThan(correlation(0), 0.9)
        XCTAssertLessThan(abs(correlation(0.5)), 0.15)
        XCTAssertLessThan(correlation(1), -0.5)
    }
}

final class DaySplitTests: XCTestCase {
    func testDaysDriftAndSplitByDay() throws {
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = SimulatorConfig()
        c.rows = 6000; c.seed = 4; c.days = 6; c.drift = 0.3
        _ = try FunnelSimulator(config: c).write(to: dir)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/data_truth.csv"))
        var o = ReadOptions()
        o.dayColumn = "day"
        let loaded = try DatasetLoader.loadByDay(dir + "/data.csv", options: o, minCount: 1, trainDays: 1...4, evaluationDays: [5, 6])
        XCTAssertFalse(loaded.schema.layout.categorical.contains("day"), "the day is a split key, not a feature")
        XCTAssertTrue(loaded.schema.layout.ignored.contains("day"))
        XCTAssertEqual(loaded.train.rowCount, 4000)
        XCTAssertEqual(loaded.days[5]!.rowCount, 1000)
        XCTAssertEqual(loaded.days[6]!.sourceRows.first, 5000, "rows keep their file positions for truth alignment")
        // Drift: the same impression drawn on day 0 and on a later day has different true rates.
        let sim = FunnelSimulator(config: c)
        var a = RandomSource(seed: 1), b = RandomSource(seed: 1)
        let early = sim.impression(&a, day: 0), late = sim.impression(&b, day: 5)
        XCTAssertEqual(early.values, late.values)
        XCTAssertNotEqual(early.pCTR, late.pCTR)
        var missing = ReadOptions()
        missing.dayColumn = "when"
        XCTAssertThrowsError(try DatasetLoader.loadByDay(dir + "/data.csv", options: missing, minCount: 1, trainDays: 1...2, evaluationDays: [3])) {
            XCTAssertTrue("\($0)".contains("column 'when': day column is missing"), "\($0)")
        }
        XCTAssertThrowsError(try DatasetLoader.loadByDay(dir + "/data.csv", options: o, minCount: 1, trainDays: 1...2, evaluationDays: [9])) {
            XCTAssertTrue("\($0)".contains("no rows on day 9"), "\($0)")
        }
    }
}
