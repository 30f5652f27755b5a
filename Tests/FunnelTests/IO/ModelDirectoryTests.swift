import XCTest
@testable import Funnel
#if canImport(Glibc)
import Glibc
#endif

final class ModelDirectoryTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory(); BLAS.setThreads(1) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testSafeTensorsLayoutAndRoundTrip() throws {
        let tensors = [SafeTensors.Tensor(name: "b", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
                       SafeTensors.Tensor(name: "a", shape: [1], values: [-0.5])]
        let data = SafeTensors.encode(tensors, metadata: ["format": "pt"])
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "data section is 8-byte aligned")
        XCTAssertEqual(data.count, 8 + headerLength + 7 * 4)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let b = header["b"] as! [String: Any]
        XCTAssertEqual(b["dtype"] as? String, "F32")
        XCTAssertEqual(b["shape"] as? [Int], [2, 3])
        XCTAssertEqual(b["data_offsets"] as? [Int], [0, 24])
        let (decoded, meta) = try SafeTensors.decode(data, path: "x")
        XCTAssertEqual(decoded["b"], tensors[0])
        XCTAssertEqual(decoded["a"], tensors[1])
        XCTAssertEqual(meta["format"], "pt")
    }

    func testSafeTensorsRejectsDamagedFiles() {
        let good = SafeTensors.encode([SafeTensors.Tensor(name: "w", shape: [4], values: [1, 2, 3, 4])])
        let cases: [(Data, String)] = [
            (Data([1, 2, 3]), "only 3 bytes"),
            (good.prefix(good.count - 4), "lies outside the data"),
            (Data(repeating: 0xFF, count: 64), "does not fit the file"),
            ({ var d = good; d[8] = UInt8(ascii: "["); return d }(), "header is not a JSON object"),
            (Data("garbage garbage garbage".utf8), "does not fit the file"),
        ]
        for (data, expected) in cases {
            XCTAssertThrowsError(try SafeTensors.decode(data, path: "w.safetensors")) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(e)")
                XCTAssertTrue("\(e)".hasPrefix("w.safetensors: not a valid safetensors file"), "\(e)")
            }
        }
    }

    private func smallModel(kind: ModelKind, seed: UInt64 = 3, trunk: TrunkKind = .esmm) throws -> (TrainedModel, EncodedDataset) {
        let sim = dir + "/sim"
        var c = SimulatorConfig()
        c.rows = 3000; c.seed = 5; c.vocabScale = 0.02
        if !FileManager.default.fileExists(atPath: sim + "/train.csv") { _ = try FunnelSimulator(config: c).write(to: sim) }
        let (schema, data, _) = try DatasetLoader.loadForTraining(sim + "/train.csv", options: ReadOptions(), minCount: 1)
        var config = ModelConfig(kind: kind)
        config.hidden = [16, 8]; config.embeddingDim = 4; config.batchSize = 256; config.seed = seed
        config.trunk = trunk
        config.bottom = []
        if trunk == .sharedBottom { config.bottom = [12]; config.hidden = [6] }
        if trunk == .mmoe || trunk == .ple || trunk == .taml { config.experts = 2; config.expertHidden = [8]; config.hidden = [6]; config.levels = 2 }
        let net = FunnelNetwork(config: config, embeddingRows: schema.embeddingRows, fields: schema.fields.count, denseCount: schema.dense.count)
        let result = try Trainer(config: config).train(net, on: data)
        let summary = TrainingSummary(rows: data.rowCount, clicks: data.clickCount, conversions: data.conversionCount, epochs: 1,
                                      threads: 1, seconds: result.seconds, trainSamplesPerSecond: result.samplesPerSecond,
                                      finalLoss: result.finalLoss, readNotes: [])
        return (TrainedModel(config: config, schema: schema, network: net, training: summary), data)
    }

    func testModelRoundTripPredictsTheSame() throws {
        for kind in ModelKind.allCases {
            for trunk in TrunkKind.allCases {
            let (model, data) = try smallModel(kind: kind, trunk: trunk)
            let out = dir + "/\(kind.rawValue)-\(trunk.rawValue)"
            try model.save(to: out)
            let loaded = try TrainedModel.load(from: out)
            XCTAssertEqual(loaded.config, model.config)
            let a = model.network.predict(data), b = loaded.network.predict(data)
            func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }
            XCTAssertEqual(bits(a.ctr), bits(b.ctr), kind.rawValue)
            XCTAssertEqual(bits(a.cvr), bits(b.cvr), kind.rawValue)
            XCTAssertEqual(bits(a.ctcvr), bits(b.ctcvr), kind.rawValue)
            let arch = model.config.architecture
            for i in 0..<data.rowCount {
                XCTAssertFalse(a.ctcvr[i].isNaN, kind.rawValue)
                XCTAssertEqual(a.ctr[i].isNaN, !arch.ctrHead, kind.rawValue)
                if arch.secondHead == .cvr && !arch.ctcvrHead {
                    XCTAssertEqual(a.ctcvr[i], a.ctr[i] * a.cvr[i], kind.rawValue)
                } else if arch.secondHead == .ctcvr && arch.ctrHead {
                    XCTAssertEqual(a.cvr[i], min(a.ctcvr[i] / a.ctr[i], 1), accuracy: 1e-6, kind.rawValue)
                }
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
            XCTAssertEqual(files, ["model.json", "vocabularies.bin", "weights.safetensors"], "no temporary files left behind")
            // The weights stream to disk piece by piece: the bytes and checksum of the encoded file.
            let written = try Data(contentsOf: URL(fileURLWithPath: out + "/weights.safetensors"))
            XCTAssertEqual(written, model.encodedWeights(), kind.rawValue)
            XCTAssertEqual(loaded.manifest.weightsChecksum, Checksum.fnv64Hex(written), kind.rawValue)
            }
        }
    }

    /// A memory plan made before the first step counts the mapped zero buffers' pages that are
    /// not resident yet (a gradient buffer written on the first step), and stops counting them
    /// once written or freed.
    func testCommittedMemoryCountsMappedBuffersBeforeTheyAreWritten() {
        let before = MappedBuffers.shared.untouchedBytes
        var buffer: FloatBuffer? = FloatBuffer(count: 8 << 20)  // 32 MiB of zeros: mapped
        XCTAssertGreaterThanOrEqual(MappedBuffers.shared.untouchedBytes - before, 31 << 20)
        buffer!.base.update(repeating: 1, count: 8 << 20)
        XCTAssertLessThan(MappedBuffers.shared.untouchedBytes - before, 1 << 20, "written pages are resident, not untouched")
        buffer = nil
        XCTAssertLessThanOrEqual(MappedBuffers.shared.untouchedBytes, before + (1 << 20))
        XCTAssertGreaterThanOrEqual(ResourceUsage.committedMegabytes, ResourceUsage.currentRSSMegabytes)
    }

    func testSameSeedGivesByteIdenticalWeights() throws {
        let (m1, _) = try smallModel(kind: .esmm, seed: 9)
        let (m2, _) = try smallModel(kind: .esmm, seed: 9)
        let (m3, _) = try smallModel(kind: .esmm, seed: 10)
        try m1.save(to: dir + "/a"); try m2.save(to: dir + "/b"); try m3.save(to: dir + "/c")
        let a = FileManager.default.contents(atPath: dir + "/a/weights.safetensors")!
        let b = FileManager.default.contents(atPath: dir + "/b/weights.safetensors")!
        let c = FileManager.default.contents(atPath: dir + "/c/weights.safetensors")!
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    func testLoadRejectsWrongAndDamagedModels() throws {
        let (model, _) = try smallModel(kind: .esmm)
        let out = dir + "/m"
        try model.save(to: out)
        XCTAssertThrowsError(try TrainedModel.load(from: dir + "/nothing")) { XCTAssertTrue("\($0)".contains("not found"), "\($0)") }
        // Truncated weights: checksum mismatch, named.
        let wpath = out + "/weights.safetensors"
        let weights = FileManager.default.contents(atPath: wpath)!
        try weights.prefix(100).write(to: URL(fileURLWithPath: wpath))
        XCTAssertThrowsError(try TrainedModel.load(from: out)) { XCTAssertTrue("\($0)".contains("checksum"), "\($0)") }
        try weights.write(to: URL(fileURLWithPath: wpath))
        XCTAssertNoThrow(try TrainedModel.load(from: out))
        // A manifest from the future, a foreign JSON file, and a model.json that is not JSON.
        let mpath = out + "/model.json"
        let manifest = String(data: FileManager.default.contents(atPath: mpath)!, encoding: .utf8)!
        try manifest.replacingOccurrences(of: "\"format_version\" : 1", with: "\"format_version\" : 99")
            .write(toFile: mpath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainedModel.load(from: out)) { XCTAssertTrue("\($0)".contains("newer than this funnel reads"), "\($0)") }
        try "{\"hello\": 1}".write(toFile: mpath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainedModel.load(from: out)) { XCTAssertTrue("\($0)".contains("not a Funnel model"), "\($0)") }
        try "not json".write(toFile: mpath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainedModel.load(from: out)) { XCTAssertTrue("\($0)".contains("cannot read model manifest"), "\($0)") }
        // A shape that does not match the schema: re-save with a different hidden size under the same manifest.
        try manifest.write(toFile: mpath, atomically: true, encoding: .utf8)
        var other = model.config
        other.hidden = [5, 8]
        let net = FunnelNetwork(config: other, embeddingRows: model.schema.embeddingRows, fields: model.schema.fields.count,
                                denseCount: model.schema.dense.count)
        let foreign = SafeTensors.encode(net.parameters.map { SafeTensors.Tensor(name: $0.name, shape: $0.shape, values: $0.value.array) })
        try foreign.write(to: URL(fileURLWithPath: wpath))
        let fixed = manifest.replacingOccurrences(of: Checksum.fnv64Hex(weights), with: Checksum.fnv64Hex(foreign))
        try fixed.write(toFile: mpath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainedModel.load(from: out)) { XCTAssertTrue("\($0)".contains("has shape [5,"), "\($0)") }
    }

    /// A safetensors file with `header` (JSON text) and `body` bytes of data.
    private func forged(_ header: String, body: Int) -> Data {
        var h = header
        while (8 + h.utf8.count) % 8 != 0 { h += " " }
        var d = Data()
        var n = UInt64(h.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(h.utf8))
        d.append(Data(repeating: 0, count: body))
        return d
    }

    func testSafeTensorsRejectsForgedStructure() {
        func entry(_ shape: String, _ offsets: String) -> String { "{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":\(offsets)}" }
        let cases: [(String, Int, String)] = [
            ("{\"a\":\(entry("[2]", "[0,8]")),\"b\":\(entry("[2]", "[4,12]"))}", 12, "overlaps another tensor's bytes"),
            ("{\"a\":\(entry("[2]", "[0,8]")),\"a\":\(entry("[2]", "[8,16]"))}", 16, "tensor 'a' is named twice"),
            ("{\"a\":\(entry("[0]", "[18446744073709551615,18446744073709551615]"))}", 8, "are not two integers"),
            ("{\"a\":\(entry("[1.5]", "[0,4]"))}", 4, "is not a list of integers"),
            ("{\"a\":\(entry("[-1,-4]", "[0,16]"))}", 16, "has a negative dimension (-1)"),
            ("{\"a\":\(entry("[true]", "[0,4]"))}", 4, "is not a list of integers"),
            ("{\"a\":\(entry("[1]", "[0,4]")),\"b\":\(entry("[1]", "[8,12]"))}", 12, "bytes 4..<8 of the data belong to no tensor"),
            ("{\"a\":\(entry("[1]", "[0,4]"))}", 12, "bytes 4..<12 of the data belong to no tensor"),
        ]
        for (header, body, expected) in cases {
            XCTAssertThrowsError(try SafeTensors.decode(forged(header, body: body), path: "w.safetensors"), expected) { e in
                XCTAssertTrue("\(e)".contains(expected), "expected '\(expected)' in \(e)")
            }
        }
        // Keys escaped differently are still the same name; a nested object's keys are not names.
        let escaped = "{\"a\":\(entry("[1]", "[0,4]")),\"\\u0061\":\(entry("[1]", "[4,8]"))}"
        XCTAssertThrowsError(try SafeTensors.decode(forged(escaped, body: 8), path: "w")) { XCTAssertTrue("\($0)".contains("named twice"), "\($0)") }
        let fine = "{\"__metadata__\":{\"a\":\"x\"},\"a\":\(entry("[1]", "[0,4]")),\"b\":\(entry("[1]", "[4,8]"))}"
        XCTAssertNoThrow(try SafeTensors.decode(forged(fine, body: 8), path: "w"))
    }

    func testAModelDirectoryIsReplacedWholeKeepingOtherFilesAndNeverFollowsLinksInside() throws {
        let (model, _) = try smallModel(kind: .esmm)
        let out = dir + "/whole"
        try model.save(to: out)
        try "my notes".write(toFile: out + "/NOTES.txt", atomically: true, encoding: .utf8)
        try model.save(to: out)
        XCTAssertEqual(try String(contentsOfFile: out + "/NOTES.txt", encoding: .utf8), "my notes", "a user's file survives a replace")
        let siblings = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".whole.") }
        XCTAssertEqual(siblings, [], "no temporary is left beside the model")
        // The weights replaced by a symbolic link to a file elsewhere: refused, never read through.
        let outside = dir + "/outside.bin"
        try FileManager.default.copyItem(atPath: out + "/weights.safetensors", toPath: outside)
        try FileManager.default.removeItem(atPath: out + "/weights.safetensors")
        try FileManager.default.createSymbolicLink(atPath: out + "/weights.safetensors", withDestinationPath: outside)
        XCTAssertThrowsError(try TrainedModel.load(from: out)) {
            XCTAssertTrue("\($0)".contains("weights.safetensors: is a symbolic link"), "\($0)")
        }
    }

    func testARunKilledBetweenTheTwoRenamesIsRecoveredByTheNextWriter() throws {
        let (model, _) = try smallModel(kind: .esmm)
        let out = dir + "/aside"
        try model.save(to: out)
        // What the rename-aside fallback leaves when killed after its first rename: no `aside`,
        // a complete `.aside.old-PID` of a process that no longer exists.
        let dead: Int32 = 4_000_000
        XCTAssertEqual(rename(out, dir + "/.aside.old-\(dead)"), 0)
        try AtomicDirectory.recover(out)
        XCTAssertNoThrow(try TrainedModel.load(from: out), "the previous model is back in place")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".aside.") }, [])
    }

    func testDenseStatisticsThatCannotStandardiseAreRefused() throws {
        let (model, _) = try smallModel(kind: .esmm)
        let out = dir + "/std0"
        try model.save(to: out)
        let mpath = out + "/model.json"
        let text = try String(contentsOfFile: mpath, encoding: .utf8)
        let std = try XCTUnwrap(text.range(of: "\"std\" : [0-9.e+-]+", options: .regularExpression))
        try text.replacingCharacters(in: std, with: "\"std\" : 0").write(toFile: mpath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainedModel.load(from: out)) { XCTAssertTrue("\($0)".contains("std must be finite and > 0"), "\($0)") }
    }
}
