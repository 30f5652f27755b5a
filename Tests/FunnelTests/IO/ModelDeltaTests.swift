import Foundation
import XCTest
@testable import Funnel

/// `train --init-from PREV --delta`: PREV + NEXT/delta/ is NEXT, exactly; a damaged delta or a
/// delta of another base is refused.
final class ModelDeltaTests: XCTestCase {
    static func models(_ dir: String) throws -> (prev: String, next: String, data: String) {
        let one = writeFile(dir, "d1.csv", ContinuedTrainingTests.day(rows: 300, values: 1...9, seed: 11, dense: true))
        let two = writeFile(dir, "d2.csv", ContinuedTrainingTests.day(rows: 300, values: 5...14, seed: 12, dense: true))
        let c = ContinuedTrainingTests.config(.esmm)
        _ = try ContinuedTrainingTests.train(one, out: dir + "/prev", c, saveState: true)
        var r = TrainingRequest(train: two, out: dir + "/next", config: c)
        (r.initFrom, r.writeDelta, r.read.vocabularyPolicy) = (dir + "/prev", true, VocabularyPolicy(evictUnseenDays: 1))
        let outcome = try TrainingJob.run(r)
        XCTAssertGreaterThan(outcome.continued?.evictedRows ?? 0, 0, "ids 1–4 are evicted")
        XCTAssertGreaterThan(outcome.continued?.addedRows ?? 0, 0, "ids 10–14 are added")
        return (dir + "/prev", dir + "/next", two)
    }

    func testTheBasePlusItsDeltaIsTheNextModelExactly() throws {
        let dir = makeTempDirectory("delta")
        let (prev, next, data) = try Self.models(dir)
        let applied = try ModelDelta.apply(next + "/delta", to: try TrainedModel.load(from: prev))
        let full = try TrainedModel.load(from: next)
        XCTAssertEqual(applied.manifest.weightsChecksum, full.manifest.weightsChecksum)
        let (rows, _) = try DatasetLoader.load(data, schema: full.schema, options: ReadOptions(), requireLabels: true)
        let a = applied.network.predict(rows), b = full.network.predict(rows)
        XCTAssertEqual(a.ctcvr.map(\.bitPattern), b.ctcvr.map(\.bitPattern))
        XCTAssertEqual(a.ctr.map(\.bitPattern), b.ctr.map(\.bitPattern))
        // Only changed rows travel: fewer than the table has.
        let rowsBytes = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: next + "/delta/rows.bin")[.size] as? Int)
        XCTAssertLessThan(rowsBytes, full.schema.embeddingRows * (4 + 4 * full.config.embeddingDim))
    }

    func testDamagedForeignOrPartialDeltasAreRefused() throws {
        let dir = makeTempDirectory("delta-bad")
        let (prev, next, _) = try Self.models(dir)
        let base = try TrainedModel.load(from: prev)
        func refuses(_ expected: String, _ base: TrainedModel, line: UInt = #line) {
            XCTAssertThrowsError(try ModelDelta.apply(next + "/delta", to: base), line: line) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)", line: line)
            }
        }
        refuses("a delta of the model whose weights checksum", try TrainedModel.load(from: next))
        let rows = next + "/delta/rows.bin", good = try Data(contentsOf: URL(fileURLWithPath: rows))
        var bad = good
        bad[bad.count / 2] ^= 0x10
        try bad.write(to: URL(fileURLWithPath: rows))
        refuses("damaged or partial", base)
        try good.prefix(good.count - 8).write(to: URL(fileURLWithPath: rows))
        refuses("damaged or partial", base)
        try good.write(to: URL(fileURLWithPath: rows))
        try FileManager.default.removeItem(atPath: next + "/delta/dense.safetensors")
        refuses("no such file", base)
        XCTAssertThrowsError(try TrainingJob.run({
            var r = TrainingRequest(train: dir + "/d1.csv", out: dir + "/x", config: ContinuedTrainingTests.config(.esmm))
            r.writeDelta = true
            return r
        }())) { XCTAssertTrue("\($0)".contains("needs the model it continues"), "\($0)") }
    }
}
