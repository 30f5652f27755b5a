import Foundation
import Logging
import XCTest
@testable import Funnel
@testable import FunnelServe

/// `serve --watch ROOT`: the newest complete version is served; a version carrying a delta of
/// the served model is applied (rows and dense weights only) and predicts exactly as the full
/// version; hidden, damaged or foreign versions are passed over and the served model stays.
final class VersionWatcherTests: XCTestCase {
    func testTheWatcherMovesToEachNewerVersionAndRefusesBadOnes() throws {
        let dir = makeDirectory()
        try TinyModels.simulate(into: dir + "/data", rows: 3000, seed: 4)
        let lines = try String(contentsOfFile: dir + "/data/train.csv", encoding: .utf8).split(separator: "\n")
        try (lines[0..<1200].joined(separator: "\n") + "\n").write(toFile: dir + "/d1.csv", atomically: true, encoding: .utf8)
        try ([lines[0]] + lines[1200...]).joined(separator: "\n").appending("\n").write(toFile: dir + "/d2.csv", atomically: true, encoding: .utf8)
        var c = ModelConfig(kind: .esmm)
        (c.embeddingDim, c.hidden, c.batchSize) = (4, [8], 256)
        let root = dir + "/root"
        var first = TrainingRequest(train: dir + "/d1.csv", out: root + "/v1", config: c)
        first.saveOptimizerState = true
        _ = try TrainingJob.run(first)
        var next = TrainingRequest(train: dir + "/d2.csv", out: dir + "/staging/v2", config: c)
        (next.initFrom, next.writeDelta) = (root + "/v1", true)
        _ = try TrainingJob.run(next)

        XCTAssertEqual(try VersionWatcher.newestFull(in: root), root + "/v1")
        var config = ServeConfiguration(modelPath: root + "/v1")
        config.workers = 1
        var logger = Logger(label: "funnel.watch.test")
        logger.logLevel = .critical
        let server = try FunnelServer(configuration: config, logger: logger)
        let watcher = VersionWatcher(root: root, server: server)
        XCTAssertFalse(watcher.poll(), "nothing newer")
        // A writer's hidden temporary is never looked at.
        try FileManager.default.createDirectory(atPath: root + "/.v3.tmp-1", withIntermediateDirectories: true)
        try "{}".write(toFile: root + "/.v3.tmp-1/model.json", atomically: true, encoding: .utf8)
        XCTAssertFalse(watcher.poll())

        try FileManager.default.moveItem(atPath: dir + "/staging/v2", toPath: root + "/v2")
        XCTAssertTrue(watcher.poll())
        XCTAssertEqual(server.slot.current.path, root + "/v2")
        let served = try XCTUnwrap(server.slot.current.trainedModel), full = try TrainedModel.load(from: root + "/v2")
        XCTAssertEqual(served.manifest.weightsChecksum, full.manifest.weightsChecksum)
        let (rows, _) = try DatasetLoader.load(dir + "/d2.csv", schema: full.schema, options: ReadOptions(), requireLabels: true)
        XCTAssertEqual(served.network.predict(rows).ctcvr.map(\.bitPattern), full.network.predict(rows).ctcvr.map(\.bitPattern))

        // A damaged delta with no full model beside it: refused, v2 keeps serving.
        try FileManager.default.createDirectory(atPath: root + "/v3", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/v2/delta", toPath: root + "/v3/delta")
        XCTAssertFalse(watcher.poll(), "v3's delta is v1's, not the served v2's, and v3 has no full model")
        XCTAssertEqual(server.slot.current.path, root + "/v2")
        // A full version: loaded whole.
        try FileManager.default.copyItem(atPath: root + "/v1", toPath: root + "/v4")
        XCTAssertTrue(watcher.poll())
        XCTAssertEqual(server.slot.current.path, root + "/v4")
        // A delta of the served model (v4 is v1) that is damaged: refused, v4 keeps serving.
        try FileManager.default.createDirectory(atPath: root + "/v5", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/v2/delta", toPath: root + "/v5/delta")
        var rowsFile = try Data(contentsOf: URL(fileURLWithPath: root + "/v5/delta/rows.bin"))
        rowsFile[rowsFile.count - 5] ^= 0x20
        try rowsFile.write(to: URL(fileURLWithPath: root + "/v5/delta/rows.bin"))
        XCTAssertFalse(watcher.poll())
        XCTAssertEqual(server.slot.current.path, root + "/v4")
        XCTAssertFalse(watcher.poll(), "a refused version is not tried again until it changes")
    }

    private func makeDirectory() -> String {
        let dir = NSTemporaryDirectory() + "funnel-watch-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }
}
