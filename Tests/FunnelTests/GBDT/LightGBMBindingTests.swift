import Foundation
import XCTest
@testable import Funnel

/// Funnel's LightGBM binding against the Python `lightgbm` package (installed by `make deps`):
/// same parameters, same features → the same predictions, both ways round.
final class LightGBMBindingTests: XCTestCase {
    /// A deterministic matrix with NaNs, integer-coded columns and a label that depends on them.
    private func matrix(rows: Int, seed: UInt64) -> (FeatureMatrix, [Float]) {
        var rng = RandomSource(seed: seed)
        let cols = 7
        var values = [Float](repeating: 0, count: rows * cols), labels = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var logit = -0.5
            for c in 0..<cols {
                var v: Float
                switch c {
                case 0, 1, 2: v = Float(rng.normal())
                case 3: v = Float(rng.below(12))
                case 4: v = rng.uniform() < 0.2 ? .nan : Float(rng.uniform() * 100)
                default: v = Float(rng.below(3))
                }
                values[r * cols + c] = v
                if !v.isNaN { logit += [0.8, -0.6, 0.3, 0.05, 0.01, 0.4, -0.2][c] * Double(v) }
            }
            labels[r] = rng.uniform() < 1 / (1 + exp(-logit)) ? 1 : 0
        }
        return (FeatureMatrix(rows: rows, names: (0..<cols).map { "x\($0)" }, values: values), labels)
    }

    private func write(_ values: [Float], _ path: String) throws {
        try values.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
    }

    private func readDoubles(_ path: String) throws -> [Double] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }

    func testPredictionsEqualPythonLightGBM() throws {
        let dir = makeTempDirectory("funnel-lgb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (train, labels) = matrix(rows: 3000, seed: 5)
        let (test, _) = matrix(rows: 700, seed: 6)
        let iterations = 40
        let params = LightGBMParameters([
            ("objective", "binary"), ("metric", "binary_logloss"), ("learning_rate", "0.1"), ("num_leaves", "15"),
            ("min_data_in_leaf", "20"), ("feature_fraction", "0.8"), ("bagging_fraction", "0.7"), ("bagging_freq", "1"),
            ("lambda_l2", "1"), ("max_bin", "63"), ("seed", "7"), ("num_threads", "1"), ("deterministic", "true"),
            ("force_col_wise", "true"), ("verbosity", "-1"),
        ])
        let (booster, result) = try BoostingRun.train(model: "parity", train: train, trainLabels: labels, valid: nil, validLabels: nil,
                                                      parameters: params, iterations: iterations, earlyStoppingRounds: 0)
        XCTAssertEqual(result.bestIteration, iterations)
        let swift = try booster.predict(test)
        try write(train.values, dir + "/train.f32")
        try write(labels, dir + "/labels.f32")
        try write(test.values, dir + "/test.f32")
        try result.modelText.write(toFile: dir + "/model.txt", atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Fixtures.path("lightgbm_parity.py"), dir, "\(train.rows)", "\(train.columns)",
                             "\(test.rows)", "\(iterations)", params.string]
        let errPipe = Pipe(), outPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = outPipe
        try process.run()
        let err = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let version = String(decoding: outPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return XCTFail("python3 lightgbm failed (run `make deps` to install it): \(err)")
        }
        XCTAssertEqual(version.trimmingCharacters(in: .whitespacesAndNewlines), LightGBMLibrary.pinnedVersion)
        let trainedThere = try readDoubles(dir + "/python_trained.f64")
        let loadedThere = try readDoubles(dir + "/python_loaded.f64")
        XCTAssertEqual(trainedThere.count, test.rows)
        XCTAssertEqual(loadedThere.count, test.rows)
        var maxTrained = 0.0, maxLoaded = 0.0
        for i in 0..<test.rows {
            maxTrained = max(maxTrained, abs(swift[i] - trainedThere[i]))
            maxLoaded = max(maxLoaded, abs(swift[i] - loadedThere[i]))
        }
        print("parity: max |Δ| trained \(maxTrained), loaded \(maxLoaded)")
        XCTAssertLessThanOrEqual(maxTrained, 1e-6, "Funnel-trained vs Python-trained predictions")
        XCTAssertLessThanOrEqual(maxLoaded, 1e-6, "Funnel's model text predicted by Funnel vs by Python")
        // The predictions are not trivially equal: they spread over a real range.
        XCTAssertGreaterThan((swift.max() ?? 0) - (swift.min() ?? 0), 0.3)
    }

    func testEarlyStoppingKeepsTheBestIteration() throws {
        let (train, labels) = matrix(rows: 1500, seed: 8)
        let (valid, validLabels) = matrix(rows: 800, seed: 9)
        // A high learning rate with deep trees overfits quickly: validation loss turns up.
        let params = LightGBMParameters([("learning_rate", "0.5"), ("num_leaves", "63"), ("min_data_in_leaf", "2"),
                                         ("num_threads", "1"), ("verbosity", "-1"), ("deterministic", "true"),
                                         ("force_col_wise", "true")])
        let (booster, result) = try BoostingRun.train(model: "es", train: train, trainLabels: labels, valid: valid,
                                                      validLabels: validLabels, parameters: params, iterations: 300,
                                                      earlyStoppingRounds: 10)
        XCTAssertTrue(result.stoppedEarly)
        XCTAssertEqual(result.iterations, result.bestIteration + 10)
        XCTAssertEqual(result.validLossHistory.count, result.iterations)
        XCTAssertEqual(result.bestValidLoss, result.validLossHistory.min())
        XCTAssertEqual(result.validLossHistory[result.bestIteration - 1], result.bestValidLoss)
        // The returned booster is cut at the best iteration: its validation log loss is the best one.
        let p = try booster.predict(valid).map { Float($0) }
        XCTAssertEqual(Metrics.logLoss(predictions: p, labels: validLabels)!, result.bestValidLoss!, accuracy: 1e-5)
    }

    func testMissingLibraryNamesTheInstallCommand() {
        XCTAssertThrowsError(try LightGBMLibrary.open(path: "/nonexistent/lib_lightgbm.so")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("pip install lightgbm"), text)
            XCTAssertTrue(text.contains("FUNNEL_LIGHTGBM_LIB"), text)
        }
    }

    func testGarbageModelTextIsRefused() {
        XCTAssertThrowsError(try LightGBMBooster(modelText: "not a model\n", source: "x.txt")) { error in
            XCTAssertTrue("\(error)".contains("x.txt"), "\(error)")
        }
    }

    /// Trains `params` for a few iterations on a dataset and returns LightGBM's model text.
    private func modelText(_ data: LightGBMDataset, _ params: LightGBMParameters) throws -> String {
        let booster = try LightGBMBooster(train: data, parameters: params)
        for _ in 0..<8 { _ = try booster.updateOneIteration() }
        return try booster.modelText()
    }

    /// The data-parallel path bins from LightGBM's own sample of one machine's rows
    /// (`LGBM_SampleIndices` → `LGBM_DatasetCreateFromSampledColumn` → rows pushed): on one
    /// process it must be the very dataset `LGBM_DatasetCreateFromMat` builds — same bins, same
    /// bundles, so the same trees, bagging included. A sample smaller than the rows is drawn.
    func testSampledColumnDatasetIsTheMatrixDataset() throws {
        let (train, labels) = matrix(rows: 5000, seed: 11)
        let params = LightGBMParameters([
            ("objective", "binary"), ("num_leaves", "15"), ("min_data_in_leaf", "20"), ("bagging_fraction", "0.7"),
            ("bagging_freq", "1"), ("feature_fraction", "0.8"), ("max_bin", "31"), ("bin_construct_sample_cnt", "1500"),
            ("seed", "7"), ("num_threads", "1"), ("deterministic", "true"), ("force_col_wise", "true"), ("verbosity", "-1"),
        ])
        let fromMat = try modelText(try LightGBMDataset(train, labels: labels, parameters: params), params)
        let sampled = try modelText(try LightGBMDataset(train, labels: labels, partition: RowPartition(rows: train.rows),
                                                        parameters: params, communicator: .single), params)
        XCTAssertEqual(fromMat, sampled)
    }

    /// Ranks are given `bagging_seed` explicitly (shifted by their first bagging block), so Funnel
    /// must know the seed LightGBM derives from `seed`: naming it explicitly changes nothing.
    func testDerivedBaggingSeedIsLightGBMs() throws {
        let (train, labels) = matrix(rows: 3000, seed: 12)
        var params = LightGBMParameters([
            ("objective", "binary"), ("num_leaves", "15"), ("bagging_fraction", "0.6"), ("bagging_freq", "1"),
            ("seed", "7"), ("num_threads", "1"), ("deterministic", "true"), ("force_col_wise", "true"), ("verbosity", "-1"),
        ])
        let derived = try modelText(try LightGBMDataset(train, labels: labels, parameters: params), params)
        let seed = BoostingRun.baggingSeed(params)
        params["bagging_seed"] = String(seed)
        XCTAssertEqual(derived, try modelText(try LightGBMDataset(train, labels: labels, parameters: params), params))
        params["bagging_seed"] = String(seed + 1)
        XCTAssertNotEqual(derived, try modelText(try LightGBMDataset(train, labels: labels, parameters: params), params),
                          "another bagging seed draws other bags (the comparison above can fail)")
        XCTAssertEqual(BoostingRun.baggingSeed(LightGBMParameters([("bagging_seed", "42")])), 42)
        XCTAssertEqual(BoostingRun.baggingSeed(LightGBMParameters()), 3)
    }
}
