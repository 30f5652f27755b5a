import Foundation
import XCTest
@testable import Funnel

/// `funnel prepare` caches read back exactly what the CSV reader produces, are refused when
/// damaged, and feed every loader.
final class ColumnarCacheTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory("funnel-cache") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private let csvText = """
        day,user,item,price,score,click,purchase
        1,10,apple,1.5,,1,1
        1,11,pear,2.5,0.25,0,0
        2,10,,3.0,1e3,1,0
        2,12,apple,,2,0,1
        3,13,fig,4.25,-1,1,1
        3,10,pear,5.0,0,0,0
        4,11,apple,6.5,3,1,0

        """

    private func options() -> ReadOptions {
        var o = ReadOptions()
        o.dayColumn = "day"
        return o
    }

    private func assertSame(_ a: RawTable, _ b: RawTable, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.rowCount, b.rowCount, file: file, line: line)
        XCTAssertEqual(a.layout, b.layout, file: file, line: line)
        XCTAssertEqual(a.keys, b.keys, file: file, line: line)
        XCTAssertEqual(a.dense.map { $0.map(\.bitPattern) }, b.dense.map { $0.map(\.bitPattern) }, "NaN-exact", file: file, line: line)
        XCTAssertEqual(a.click, b.click, file: file, line: line)
        XCTAssertEqual(a.conversion, b.conversion, file: file, line: line)
        XCTAssertEqual(a.days, b.days, file: file, line: line)
        XCTAssertEqual(a.sourceRows, b.sourceRows, file: file, line: line)
        XCTAssertEqual(a.textTokens, b.textTokens, file: file, line: line)
    }

    func testRoundTripEqualsTheCSVReaderAcrossRowGroups() throws {
        let csvPath = writeFile(dir, "t.csv", csvText)
        let cachePath = dir + "/t.fcache"
        let summary = try ColumnarCache.prepare(source: csvPath, options: options(), to: cachePath, groupRows: 3)
        XCTAssertEqual(summary.rows, 7)
        XCTAssertEqual(summary.groups, 3)
        XCTAssertTrue(ColumnarCache.isCache(cachePath))
        XCTAssertFalse(ColumnarCache.isCache(csvPath))
        for policy in InconsistentPolicy.allCases where policy != .error {
            var o = options()
            o.inconsistent = policy
            let fromCSV = try TableSource.readTraining(csvPath, options: o)
            let fromCache = try TableSource.readTraining(cachePath, options: o)
            assertSame(fromCSV, fromCache)
            XCTAssertEqual(fromCache.report.inconsistentDropped, fromCSV.report.inconsistentDropped)
            XCTAssertEqual(fromCache.report.inconsistentKept, fromCSV.report.inconsistentKept)
        }
        var strict = options()
        strict.inconsistent = .error
        XCTAssertThrowsError(try TableSource.readTraining(cachePath, options: strict)) { e in
            XCTAssertTrue("\(e)".contains(":5:"), "the line of the first conversion without a click: \(e)")
        }
        // Against a trained model's schema, through the encoded path every command uses.
        let (schema, fromCSV, _) = try DatasetLoader.loadForTraining(csvPath, options: options(), minCount: 1)
        let (fromCache, _) = try DatasetLoader.load(cachePath, schema: schema, options: options(), requireLabels: true)
        XCTAssertEqual(fromCSV.ids, fromCache.ids)
        XCTAssertEqual(fromCSV.dense, fromCache.dense)
    }

    func testColumnOptionsAreRefusedForACache() throws {
        let cachePath = dir + "/t.fcache"
        _ = try ColumnarCache.prepare(source: writeFile(dir, "t.csv", csvText), options: options(), to: cachePath)
        var o = options()
        o.categorical = ["price"]
        XCTAssertThrowsError(try TableSource.readTraining(cachePath, options: o)) { e in
            XCTAssertTrue("\(e)".contains("funnel prepare"), "\(e)")
        }
        var noDay = ReadOptions()
        noDay.dayColumn = "week"
        XCTAssertThrowsError(try TableSource.readTraining(cachePath, options: noDay))
    }

    func testDamagedCachesAreRefused() throws {
        let cachePath = dir + "/t.fcache"
        _ = try ColumnarCache.prepare(source: writeFile(dir, "t.csv", csvText), options: options(), to: cachePath, groupRows: 4)
        let good = try Data(contentsOf: URL(fileURLWithPath: cachePath))
        func expectError(_ bytes: Data, _ needle: String, _ what: String) throws {
            let p = dir + "/bad.fcache"
            try bytes.write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try TableSource.readTraining(p, options: options()), what) { e in
                XCTAssertTrue("\(e)".contains(needle), "\(what): \(e)")
                XCTAssertTrue("\(e)".contains(p), "\(what): names the file: \(e)")
            }
        }
        var flipped = good
        flipped[20] ^= 0xFF  // inside the first row group
        try expectError(flipped, "checksum", "flipped byte in a row group")
        try expectError(good.prefix(good.count - 5), "truncated", "truncated file")
        var version = good
        version[7] = 9
        try expectError(version, "version", "future version")
        var footer = good
        footer[good.count - 40] ^= 0x01  // inside the footer JSON
        try expectError(footer, "footer", "damaged footer")
        try expectError(Data("FUNNELC".utf8), "not a Funnel cache", "too short")
    }

    func testAVersion3CacheHoldsItsRequestsAndAForgedOneIsRefused() throws {
        let csv = writeFile(dir, "r.csv", "req,u,item,click,purchase\nq1,7,1,1,0\nq1,7,2,0,0\nq2,8,1,0,0\nq1,7,3,0,0\n")
        var o = ReadOptions()
        (o.requestColumn, o.requestFields) = ("req", ["u"])
        let path = dir + "/r.fcache"
        _ = try ColumnarCache.prepare(source: csv, options: o, to: path, groupRows: 3)
        let cache = try ColumnarCache(path: path)
        XCTAssertEqual(cache.footer.version, 3)
        XCTAssertEqual(cache.layout.categorical, ["u", "item"], "the request column is not a feature")
        let table = try cache.table(layout: cache.layout, requireLabels: true, dayColumn: nil)
        let keys = try XCTUnwrap(table.requests).keys
        XCTAssertEqual(table.requests?.fields, ["u"])
        XCTAssertEqual(keys.count, 4)
        XCTAssertEqual([keys[0], keys[3]], [keys[1], keys[1]], "q1's rows, across row groups")
        XCTAssertNotEqual(keys[2], keys[0])
        // Without a request column the same table is a version 1 cache, byte for byte as before.
        _ = try ColumnarCache.prepare(source: csv, options: ReadOptions(), to: dir + "/v1.fcache", groupRows: 3)
        XCTAssertEqual(try ColumnarCache(path: dir + "/v1.fcache").footer.version, 1)
        // A footer (checksum and all) naming request fields the layout lacks is refused at open.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let footerOffset = Int(bytes.subdata(in: (bytes.count - 32)..<(bytes.count - 24)).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        for forge in [{ (f: inout ColumnarCache.Footer) in f.requestColumnFields = ["nope"] }, { $0.requestColumn = "u" },
                      { $0.requestColumnFields = [] }] {
            var footer = cache.footer
            forge(&footer)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            let json = try enc.encode(footer)
            var forged = bytes.prefix(footerOffset) + json
            for word in [UInt64(footerOffset), UInt64(json.count), Checksum.fnv64Words(json)] { withUnsafeBytes(of: word.littleEndian) { forged.append(contentsOf: $0) } }
            forged.append(contentsOf: ColumnarCache.trailerMagic)
            try forged.write(to: URL(fileURLWithPath: dir + "/forged.fcache"))
            XCTAssertThrowsError(try ColumnarCache(path: dir + "/forged.fcache")) { XCTAssertTrue("\($0)".contains("request column"), "\($0)") }
        }
    }

    func testAtomicWriteLeavesNoTemporaryFile() throws {
        let cachePath = dir + "/t.fcache"
        _ = try ColumnarCache.prepare(source: writeFile(dir, "t.csv", csvText), options: options(), to: cachePath)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertFalse(names.contains { $0.contains(".tmp-") }, "\(names)")
        // A bad source leaves no cache behind.
        XCTAssertThrowsError(try ColumnarCache.prepare(source: writeFile(dir, "bad.csv", "a,click,purchase\n1,2,0\n"),
                                                       options: ReadOptions(), to: dir + "/bad.fcache"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad.fcache"))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.contains(".tmp-") })
    }
}

/// Streaming training from a cache: the schema of one streaming pass equals the in-memory fit,
/// every epoch visits every row once through bounded shuffle buffers, and the result is
/// deterministic and as good as training in memory.
final class StreamingTrainingTests: XCTestCase {
    private static var dir = ""
    private static var cache = ""

    override class func setUp() {
        dir = makeTempDirectory("funnel-stream")
        var c = SimulatorConfig()
        c.rows = 30_000; c.seed = 4; c.vocabScale = 0.02; c.ctr = 0.2; c.cvr = 0.2
        _ = try! FunnelSimulator(config: c).write(to: dir)
        cache = dir + "/train.fcache"
        _ = try! ColumnarCache.prepare(source: dir + "/train.csv", options: ReadOptions(), to: cache, groupRows: 1_000)
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testStreamingSchemaEqualsInMemoryFit() throws {
        let (schema, data, _) = try DatasetLoader.loadForTraining(Self.dir + "/train.csv", options: ReadOptions(), minCount: 2)
        let fitted = try StreamingCacheChunks.fitSchema(try ColumnarCache(path: Self.cache), options: ReadOptions(), minCount: 2)
        XCTAssertEqual(fitted.schema.fields.map(\.values), schema.fields.map(\.values))
        XCTAssertEqual(fitted.schema.dense.map(\.mean), schema.dense.map(\.mean))
        XCTAssertEqual(fitted.schema.dense.map(\.std), schema.dense.map(\.std))
        XCTAssertEqual(fitted.rows, data.rowCount)
        XCTAssertEqual(fitted.clicks, data.clickCount)
        XCTAssertEqual(fitted.conversions, data.conversionCount)
        // Groups decoded on 2 and 3 threads are added in group order: the same schema, bit for bit.
        for threads in [2, 3] {
            let parallel = try StreamingCacheChunks.fitSchema(try ColumnarCache(path: Self.cache), options: ReadOptions(), minCount: 2,
                                                              threads: threads)
            XCTAssertEqual(parallel.schema.fields.map(\.values), fitted.schema.fields.map(\.values))
            XCTAssertEqual(parallel.schema.dense.map(\.mean.bitPattern), fitted.schema.dense.map(\.mean.bitPattern))
            XCTAssertEqual(parallel.schema.dense.map(\.std.bitPattern), fitted.schema.dense.map(\.std.bitPattern))
            XCTAssertEqual([parallel.rows, parallel.clicks, parallel.bagValues], [fitted.rows, fitted.clicks, fitted.bagValues])
        }
    }

    func testEveryEpochVisitsEveryRowOnceInBoundedBuffers() throws {
        let cache = try ColumnarCache(path: Self.cache)
        let fitted = try StreamingCacheChunks.fitSchema(cache, options: ReadOptions(), minCount: 1)
        let source = StreamingCacheChunks(cache: cache, schema: fitted.schema, options: ReadOptions(), bufferRows: 5_000,
                                          rows: fitted.rows, clicks: fitted.clicks)
        var orders: [[Int32]] = []
        for epoch in 1...2 {
            var seen: [Int32] = [], sizes: [Int] = []
            try source.forEachChunk(epoch: epoch, stage: 0, seed: 1) { chunk in
                sizes.append(chunk.rowCount)
                seen += chunk.sourceRows
            }
            XCTAssertEqual(seen.count, fitted.rows)
            XCTAssertEqual(Set(seen).count, fitted.rows, "each row once")
            XCTAssertTrue(sizes.dropLast().allSatisfy { $0 >= 5_000 && $0 < 5_000 + 1_000 }, "\(sizes)")
            orders.append(seen)
        }
        XCTAssertNotEqual(orders[0], orders[1], "group order is reshuffled per epoch")
    }

    func testPrefetchedBuffersAreTheSerialOnesAndStopWithTheTrainer() throws {
        let cache = try ColumnarCache(path: Self.cache)
        let fitted = try StreamingCacheChunks.fitSchema(cache, options: ReadOptions(), minCount: 1)
        let source = StreamingCacheChunks(cache: cache, schema: fitted.schema, options: ReadOptions(), bufferRows: 3_000,
                                          rows: fitted.rows, clicks: fitted.clicks)
        func chunks(prefetch: Bool) throws -> [[Int32]] {
            source.prefetch = prefetch
            var seen: [[Int32]] = []
            try source.forEachChunk(epoch: 1, stage: 0, seed: 5) { seen.append($0.sourceRows + $0.ids) }
            return seen
        }
        let serial = try chunks(prefetch: false)
        XCTAssertGreaterThan(serial.count, 2)
        XCTAssertEqual(try chunks(prefetch: true), serial)
        // The trainer stops after the first chunk: its error comes back, the reader is stopped and joined.
        struct Stop: Error {}
        source.prefetch = true
        var trained = 0
        XCTAssertThrowsError(try source.forEachChunk(epoch: 1, stage: 0, seed: 5) { _ in trained += 1; throw Stop() }) {
            XCTAssertTrue($0 is Stop, "\($0)")
        }
        XCTAssertEqual(trained, 1)
        XCTAssertEqual(try chunks(prefetch: true), serial, "a stopped reader leaves nothing behind")
    }

    func testAReaderErrorReachesTheTrainerAfterTheChunksBeforeIt() throws {
        struct Broken: Error {}
        let one = EncodedDataset(rowCount: 0, fields: 1, denseCount: 0, ids: [], dense: [], click: [], conversion: [], sourceRows: [])
        var got = 0
        XCTAssertThrowsError(try ChunkPrefetch.run(produce: { handoff in
            try handoff.hand { one }
            try handoff.hand { one }
            throw Broken()
        }, consume: { _ in got += 1 })) { XCTAssertTrue($0 is Broken, "\($0)") }
        XCTAssertEqual(got, 2)
        // A reader that ends: every chunk, then the end.
        got = 0
        try ChunkPrefetch.run(produce: { handoff in for _ in 0..<5 { try handoff.hand { one } } }, consume: { _ in got += 1 })
        XCTAssertEqual(got, 5)
    }

    func testStreamingTrainingIsDeterministicAndLearns() throws {
        var config = ModelConfig(kind: .esmm)
        config.hidden = [16, 8]; config.embeddingDim = 4; config.batchSize = 256; config.seed = 3
        config.epochs = 2; config.learningRate = 0.005
        func streamed(prefetch: Bool = true) throws -> FunnelNetwork {
            let cache = try ColumnarCache(path: Self.cache)
            let fitted = try StreamingCacheChunks.fitSchema(cache, options: ReadOptions(), minCount: 1)
            let net = FunnelNetwork(config: config, embeddingRows: fitted.schema.embeddingRows, fields: fitted.schema.fields.count,
                                    denseCount: fitted.schema.dense.count, workers: 2)
            let source = StreamingCacheChunks(cache: cache, schema: fitted.schema, options: ReadOptions(), bufferRows: 4_000,
                                              rows: fitted.rows, clicks: fitted.clicks)
            source.prefetch = prefetch
            _ = try Trainer(config: config).train(net, chunks: source)
            return net
        }
        let a = try streamed(), b = try streamed()
        XCTAssertEqual(a.parameters.map(\.value.array), b.parameters.map(\.value.array))
        // The next buffer read on a second thread: the same chunks, so the same weights.
        let serial = try streamed(prefetch: false)
        XCTAssertEqual(a.parameters.map(\.value.array), serial.parameters.map(\.value.array), "prefetched = serial, bit for bit")

        let (schema, data, _) = try DatasetLoader.loadForTraining(Self.dir + "/train.csv", options: ReadOptions(), minCount: 1)
        let inMemory = FunnelNetwork(config: config, embeddingRows: schema.embeddingRows, fields: schema.fields.count,
                                     denseCount: schema.dense.count, workers: 2)
        _ = try Trainer(config: config).train(inMemory, on: data)
        let (test, _) = try DatasetLoader.load(Self.dir + "/test.csv", schema: schema, options: ReadOptions(), requireLabels: true)
        let streamedAUC = EvaluationReport.evaluate(a.predict(test), on: test).aucCTR!
        let memoryAUC = EvaluationReport.evaluate(inMemory.predict(test), on: test).aucCTR!
        XCTAssertEqual(streamedAUC, memoryAUC, accuracy: 0.02, "streamed \(streamedAUC) vs in memory \(memoryAUC)")
        XCTAssertGreaterThan(streamedAUC, 0.55)
    }
}

final class CacheCompatibilityTests: XCTestCase {
    /// A cache footer's read report as an earlier version wrote it still decodes (a field added
    /// to ReadReport once made every existing cache unreadable).
    func testReadReportOfAnEarlierVersionDecodes() throws {
        let old = #"{"file":"x.csv","dataLines":10,"rowsKept":9,"inconsistentDropped":1,"inconsistentKept":0,"skipped":{},"firstSkipped":{}}"#
        let r = try JSONDecoder().decode(ReadReport.self, from: Data(old.utf8))
        XCTAssertEqual(r.rowsKept, 9)
        XCTAssertEqual(r.schemaNotes, [])
        let encoded = String(decoding: try JSONEncoder().encode(r), as: UTF8.self)
        XCTAssertFalse(encoded.contains("schemaNotes"), "run-time notes are not written into footers")
    }
}
