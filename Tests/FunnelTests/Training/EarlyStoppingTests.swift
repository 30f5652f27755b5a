import Foundation
import XCTest
@testable import Funnel

final class EarlyStoppingTests: XCTestCase {
    static var dir = ""
    override class func setUp() { dir = simulatedFunnel("funnel-early", rows: 6000, seed: 11) }
    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testScheduleRatesByHand() {
        let cosine = LearningRatePlan(schedule: .cosine, base: 0.1, warmupSteps: 4, gamma: 0.1, stepSize: 1, totalSteps: 14)
        XCTAssertEqual(cosine.rate(at: 0), 0.025, accuracy: 1e-12, "warm-up: base × 1/4")
        XCTAssertEqual(cosine.rate(at: 3), 0.1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 4), 0.1, accuracy: 1e-12, "cosine starts at the base")
        XCTAssertEqual(cosine.rate(at: 9), 0.05, accuracy: 1e-12, "half way: base / 2")
        XCTAssertEqual(cosine.rate(at: 14), 0, accuracy: 1e-12)
        let step = LearningRatePlan(schedule: .step, base: 1, warmupSteps: 0, gamma: 0.5, stepSize: 3, totalSteps: 10)
        XCTAssertEqual((0..<7).map(step.rate(at:)), [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
        XCTAssertFalse(LearningRatePlan(schedule: .constant, base: 1, warmupSteps: 0, gamma: 1, stepSize: 1, totalSteps: 1).isActive)
    }

    private func request(_ out: String, _ edit: (inout TrainingRequest) -> Void = { _ in }) -> TrainingRequest {
        var c = ModelConfig(kind: .esmm)
        c.embeddingDim = 4; c.hidden = [16]; c.batchSize = 128; c.epochs = 8; c.learningRate = 0.03; c.seed = 5
        var r = TrainingRequest(train: Self.dir + "/train.csv", out: out, config: c)
        r.valid = Self.dir + "/test.csv"
        r.threads = 1
        edit(&r)
        return r
    }

    /// Early stopping stops after K evaluations without improvement and saves the best
    /// checkpoint's weights: the saved model scores exactly the reported best value.
    func testRestoresTheBestCheckpointAndStopsAfterK() throws {
        let out = Self.dir + "/early"
        let outcome = try TrainingJob.run(request(out) { $0.earlyStopping = 2; $0.monitor = .loglossCTCVR; $0.evalEverySteps = 10 })
        let best = try XCTUnwrap(outcome.best)
        let values = outcome.validation.map { $0.loglossCTCVR! }
        let bestIndex = values.firstIndex(of: values.min()!)!
        XCTAssertEqual(best.value, values[bestIndex])
        XCTAssertTrue(outcome.stoppedEarly, "a learning rate this high overfits within 8 epochs: \(values)")
        XCTAssertEqual(values.count, bestIndex + 1 + 2, "stopped after exactly 2 evaluations without improvement")
        let saved = try TrainedModel.load(from: out)
        let (valid, _) = try DatasetLoader.load(Self.dir + "/test.csv", schema: saved.schema, options: ReadOptions(), requireLabels: true)
        let report = EvaluationReport.evaluate(saved.network.predict(valid), on: valid)
        XCTAssertEqual(report.loglossCTCVR!, best.value, accuracy: 1e-12, "the saved weights are the best checkpoint's")
        XCTAssertEqual(saved.manifest.training?.best?.step, best.step)
        XCTAssertEqual(saved.manifest.training?.stoppedEarly, true)
        // A higher-is-better monitor picks the maximum.
        let auc = try TrainingJob.run(request(Self.dir + "/auc") { $0.earlyStopping = 3; $0.monitor = .aucCTR })
        XCTAssertEqual(auc.best?.value, auc.validation.compactMap(\.aucCTR).max())
    }

    func testSchedulesAreDeterministicAndDefaultsUnchanged() throws {
        let plain = try TrainingJob.run(request(Self.dir + "/plain") { $0.config.epochs = 1; $0.valid = nil })
        XCTAssertNil(plain.best)
        let manifest = try String(contentsOfFile: Self.dir + "/plain/model.json", encoding: .utf8)
        XCTAssertFalse(manifest.contains("lr_schedule"), "the default leaves model.json as before")
        func weights(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: Self.dir + "/\(name)/weights.safetensors")) }
        for name in ["cos-a", "cos-b"] {
            _ = try TrainingJob.run(request(Self.dir + "/" + name) {
                $0.config.epochs = 1; $0.valid = nil; $0.config.lrSchedule = .cosine; $0.config.warmupSteps = 5
            })
        }
        XCTAssertEqual(try weights("cos-a"), try weights("cos-b"), "same seed, same bytes")
        XCTAssertNotEqual(try weights("cos-a"), try weights("plain"), "the schedule changes the steps")
        XCTAssertThrowsError(try TrainingJob.run(request(Self.dir + "/x") { $0.earlyStopping = 1; $0.monitor = .aucCVREntireSpace })) {
            XCTAssertTrue("\($0)".contains("undefined"), "\($0)")
        }
    }
}
