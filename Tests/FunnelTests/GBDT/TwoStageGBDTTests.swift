import Foundation
import XCTest
@testable import Funnel

/// The whole two-stage pipeline on simulated RecSys-2023-layout data.
final class TwoStageGBDTTests: XCTestCase {
    private static var dataDir = ""

    override class func setUp() {
        dataDir = makeTempDirectory("funnel-recsys")
        var c = RecSysSimulatorConfig()
        c.rows = 23_000
        c.users = 3_000
        c.ads = 400
        _ = try! RecSysSimulator(config: c).write(to: dataDir)
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dataDir) }

    private func smallConfig() -> GBDTConfig {
        var cfg = GBDTConfig()
        cfg.numIterations = 60
        cfg.earlyStoppingRounds = 15
        cfg.features = .recsys2023Paper
        cfg.features.targetEncoding.statistics = [.mean, .variance]
        cfg.lightgbm = ["learning_rate": .double(0.1), "num_leaves": .int(15)]
        return cfg
    }

    private func trainModel(_ cfg: GBDTConfig) throws -> (TwoStageGBDT, RawTable) {
        let (full, settings) = try GBDTData.readTraining(Self.dataDir + "/train.tsv", preset: .auto, options: ReadOptions())
        XCTAssertEqual(settings.preset, .recsys2023)
        let (train, valid) = try GBDTData.split(full, by: cfg.split)
        XCTAssertEqual(Set(train.days), Set(45...65))
        XCTAssertEqual(Set(valid.days), [66])
        return (try TwoStageGBDT.train(train: train, valid: valid, config: cfg, read: settings, threads: 2), valid)
    }

    func testTrainsSavesLoadsAndPredictsTheSame() throws {
        let cfg = smallConfig()
        let (model, valid) = try trainModel(cfg)
        let m = model.manifest
        XCTAssertEqual(m.components.map(\.role), GBDTModelRole.allCases)
        let like = FunnelTarget.like.values(of: valid)
        XCTAssertEqual(m.components[1].validRows, Int(like.reduce(0, +)), "P(install | like) validates on liked rows only")
        XCTAssertEqual(m.validation.models.map(\.model),
                       ["two-step", "end-to-end", "two-step calibrated", "end-to-end calibrated", "ensemble"])

        // ω = observed install rate / mean prediction on the validation rows.
        let p = try model.predict(valid)
        XCTAssertEqual(m.calibration.twoStep, GBDTCalibration.factor(predictions: p.twoStep, labels: valid.conversion), accuracy: 1e-12)
        for i in 0..<p.rows {
            XCTAssertEqual(p.twoStep[i], p.like[i] * p.installGivenLike[i], accuracy: 1e-15)
            XCTAssertEqual(p.ensemble[i], 0.5 * p.twoStepCalibrated[i] + 0.5 * p.endToEndCalibrated[i], accuracy: 1e-15)
        }

        let dir = makeTempDirectory("funnel-gbdt-model")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try model.save(to: dir)
        for f in ["model.json", "features.json", "like.txt", "install_given_like.txt", "install.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f)
        }
        XCTAssertTrue(try String(contentsOfFile: dir + "/like.txt", encoding: .utf8).hasPrefix("tree"), "LightGBM's own model text")
        let loaded = try TwoStageGBDT.load(from: dir)
        let test = try loaded.read(Self.dataDir + "/test.tsv", requireLabels: true)
        XCTAssertEqual(Set(test.days), [67])
        XCTAssertEqual(try loaded.predict(test).ensemble, try model.predict(test).ensemble)
        XCTAssertEqual(try ModelDirectoryKind.detect(dir), .gbdt)

        // The test day: every Table 5 row has a log loss and an AUC well above chance.
        let report = GBDTEvaluation.evaluate(try loaded.predict(test), on: test)
        XCTAssertEqual(report.models.count, 5)
        // A constant guess of the install rate scores this log loss: every model must beat it.
        let rate = report.installRate
        let baseRate = -(rate * log(rate) + (1 - rate) * log(1 - rate))
        XCTAssertGreaterThan(rate, 0)
        for row in report.models {
            XCTAssertGreaterThan(try XCTUnwrap(row.auc, row.model), 0.6, row.model)
            XCTAssertLessThan(try XCTUnwrap(row.logLoss, row.model), baseRate, "\(row.model) against the base rate's \(baseRate)")
        }

        // A damaged model file is refused by name.
        var text = try String(contentsOfFile: dir + "/install.txt", encoding: .utf8)
        text = text.replacingOccurrences(of: "leaf_value=", with: "leaf_value=1")
        try text.write(toFile: dir + "/install.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TwoStageGBDT.load(from: dir)) { e in
            XCTAssertTrue("\(e)".contains("install.txt") && "\(e)".contains("checksum"), "\(e)")
        }
    }

    func testSameSeedSameModelBytes() throws {
        var cfg = smallConfig()
        cfg.numIterations = 15
        let (a, _) = try trainModel(cfg)
        let (b, _) = try trainModel(cfg)
        XCTAssertEqual(a.manifest.components.map(\.checksum), b.manifest.components.map(\.checksum))
        cfg.seed = 2
        let (c, _) = try trainModel(cfg)
        XCTAssertNotEqual(a.manifest.components.map(\.checksum), c.manifest.components.map(\.checksum))
    }

    func testRandomSearchKeepsTheBestTrial() throws {
        var cfg = smallConfig()
        cfg.numIterations = 20
        cfg.search.trials = 2
        cfg.search.space = ["num_leaves": SearchDimension(min: 4, max: 31, integer: true),
                            "learning_rate": SearchDimension(min: 0.03, max: 0.3, log: true)]
        let (model, _) = try trainModel(cfg)
        for c in model.manifest.components {
            XCTAssertEqual(c.searchTrials.count, 3)
            let best = c.searchTrials.compactMap(\.validLogLoss).min()!
            XCTAssertEqual(c.bestValidLogLoss!, best, accuracy: 1e-15)
            XCTAssertEqual(c.parameters, c.searchTrials.first { $0.validLogLoss == best }!.parameters)
        }
    }

    func testCalibrationFormula() {
        XCTAssertEqual(GBDTCalibration.apply(0.2, omega: 1), 0.2, accuracy: 1e-15)
        // ω multiplies the odds: 0.2 → odds 0.25 → ×2 → 0.5 → p' = 1/3.
        XCTAssertEqual(GBDTCalibration.apply(0.2, omega: 2), 1.0 / 3, accuracy: 1e-15)
        XCTAssertEqual(GBDTCalibration.factor(predictions: [0.1, 0.3], labels: [0, 1]), 0.5 / 0.2, accuracy: 1e-12)
    }

    func testConfigFilesYAMLAndJSON() throws {
        let dir = makeTempDirectory("funnel-gbdt-config")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = writeFile(dir, "c.yaml", """
            seed: 9
            split: {train_days: [45, 64], valid_day: 65, test_day: 67}
            features:
              drop: [f_9, f_23]
              missing_value: null
              target_encoding: {prior_strength: 30, min_count: 5, statistics: [mean, kurtosis], formulas: paper}
            lightgbm: {learning_rate: 0.02, num_leaves: 31, boosting: gbdt}
            models: {like: {num_leaves: 15}}
            num_iterations: 300
            ensemble: {two_step: 0.7, end_to_end: 0.3}
            search: {trials: 4, space: {num_leaves: {min: 8, max: 64, integer: true}, bagging_fraction: {values: [0.6, 0.8]}}}
            """)
        let c = try GBDTConfig.load(path: yaml)
        XCTAssertEqual(c.seed, 9)
        XCTAssertEqual(c.split.validDay, 65)
        XCTAssertNil(c.features.missingValue)
        XCTAssertEqual(c.features.targetEncoding.formulas, .paper)
        XCTAssertEqual(c.features.targetEncoding.statistics, [.mean, .kurtosis])
        XCTAssertEqual(c.numIterations, 300)
        XCTAssertEqual(c.ensemble.twoStep, 0.7)
        XCTAssertEqual(c.search.trials, 4)
        let like = c.parameters(for: .like, threads: 2), install = c.parameters(for: .install, threads: 2)
        XCTAssertEqual(like["num_leaves"], "15")
        XCTAssertEqual(install["num_leaves"], "31")
        XCTAssertEqual(install["learning_rate"], "0.02")
        XCTAssertEqual(install["seed"], "9")
        XCTAssertEqual(install["num_threads"], "2")

        let json = writeFile(dir, "c.json", #"{"num_iterations": 50, "features": {"crosses": [["f_4", "f_6"]]}}"#)
        let j = try GBDTConfig.load(path: json)
        XCTAssertEqual(j.numIterations, 50)
        XCTAssertEqual(j.features.crosses, [["f_4", "f_6"]])
        XCTAssertEqual(j.features.missingValue, 0)

        for (name, text, needle) in [
            ("typo.yaml", "num_iteration: 5\n", "num_iteration"),
            ("nested.yaml", "features: {dropp: [f_1]}\n", "features.dropp"),
            ("split.json", #"{"split": {"train_days": [50, 40]}}"#, "train_days"),
            ("lgb.yaml", "lightgbm: {num_iterations: 5}\n", "num_iterations"),
            ("type.yaml", "num_iterations: many\n", "num_iterations"),
        ] {
            XCTAssertThrowsError(try GBDTConfig.load(path: writeFile(dir, name, text)), name) { e in
                XCTAssertTrue("\(e)".contains(needle), "\(name): \(e)")
            }
        }
    }

    func testBadRowsAreLocated() throws {
        let (model, _) = try trainModel({ var c = smallConfig(); c.numIterations = 5; return c }())
        let dir = makeTempDirectory("funnel-gbdt-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = try String(contentsOfFile: Self.dataDir + "/test.tsv", encoding: .utf8).split(separator: "\n").map(String.init)
        var cells = lines[3].split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        cells[44] = "abc"  // f_44
        lines[3] = cells.joined(separator: "\t")
        let bad = writeFile(dir, "bad.tsv", lines.prefix(10).joined(separator: "\n") + "\n")
        XCTAssertThrowsError(try model.read(bad, requireLabels: false)) { e in
            XCTAssertEqual("\(e)", "\(bad):4: column 'f_44': expected a number, got 'abc'")
        }
        let lenient = try model.read(bad, requireLabels: false, skipBadRows: true)
        XCTAssertEqual(lenient.rowCount, 8)
        XCTAssertEqual(lenient.report.skippedTotal, 1)
        let empty = writeFile(dir, "empty.tsv", lines[0] + "\n")
        XCTAssertThrowsError(try model.read(empty, requireLabels: false)) { e in
            XCTAssertTrue("\(e)".contains("no data rows"), "\(e)")
        }
        let noColumn = writeFile(dir, "nocol.tsv", lines.prefix(3).map { $0.split(separator: "\t", omittingEmptySubsequences: false).dropLast(3).joined(separator: "\t") }.joined(separator: "\n") + "\n")
        XCTAssertThrowsError(try model.read(noColumn, requireLabels: false)) { e in
            XCTAssertTrue("\(e)".contains("f_79"), "\(e)")
        }
    }

    func testANeuralModelDirectoryIsNotAGBDTModel() throws {
        let dir = makeTempDirectory("funnel-gbdt-wrong")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = writeFile(dir, "model.json", #"{"format": "funnel-model", "format_version": 1}"#)
        XCTAssertThrowsError(try TwoStageGBDT.load(from: dir)) { e in XCTAssertTrue("\(e)".contains("neural"), "\(e)") }
        _ = writeFile(dir, "model.json", #"{"format": "something"}"#)
        XCTAssertThrowsError(try TwoStageGBDT.load(from: dir)) { e in XCTAssertTrue("\(e)".contains("not a Funnel model"), "\(e)") }
    }

    func testACacheTrainsTheSameModelAsTheTSV() throws {
        var cfg = smallConfig()
        cfg.numIterations = 8
        let dir = makeTempDirectory("funnel-gbdt-cache")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cachePath = dir + "/train.fcache"
        _ = try ColumnarCache.prepare(source: Self.dataDir + "/train.tsv", options: RecSys2023Layout.readOptions(), to: cachePath)
        let (fromCache, settings) = try GBDTData.readTraining(cachePath, preset: .auto, options: ReadOptions())
        XCTAssertEqual(settings.preset, .recsys2023)
        XCTAssertEqual(settings.dayColumn, "f_1")
        let (a, _) = try trainModel(cfg)
        let (train, valid) = try GBDTData.split(fromCache, by: cfg.split)
        let b = try TwoStageGBDT.train(train: train, valid: valid, config: cfg, read: settings, threads: 2)
        XCTAssertEqual(a.manifest.components.map(\.checksum), b.manifest.components.map(\.checksum))
        XCTAssertEqual(a.pipeline, b.pipeline)
    }
}
