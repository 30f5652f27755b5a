import Foundation
import XCTest
@testable import Funnel

/// The raw Ali-CCP reader: skeleton rows joined with their common features through the cache's
/// shared records, multi-valued fields with weights, skeleton order, and located errors.
final class AliCCPRawTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory("funnel-aliccp") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// `field\x02id\x03value` features joined by `\x01`.
    private func features(_ list: [(String, Int, String)]) -> String {
        list.map { "\($0.0)\u{02}\($0.1)\u{03}\($0.2)" }.joined(separator: "\u{01}")
    }

    private let md5a = "0123456789abcdef0123456789abcdef", md5b = "fedcba9876543210fedcba9876543210"

    private func writeSample(skeletonExtra: String = "", commonExtra: String = "") -> (String, String) {
        let commonA = features([("101", 7, "1.0"), ("109_14", 50, "2.0"), ("109_14", 51, "5.0"), ("109_14", 52, "1.0"), ("121", 3, "1.0")])
        let commonB = features([("101", 8, "1.0"), ("121", 4, "1.0")])  // an empty behaviour list
        let common = "\(md5a),5,\(commonA)\n\(md5b),2,\(commonB)\n" + commonExtra
        let s1 = features([("205", 900, "1.0"), ("206", 40, "1.0"), ("508", 60, "2.0")])
        let s2 = features([("205", 901, "1.0"), ("206", 41, "1.0")])
        let s3 = features([("205", 902, "1.0"), ("206", 40, "1.0"), ("508", 61, "3.0"), ("508", 62, "1.5")])
        let skeleton = "1,1,0,\(md5a),3,\(s1)\n2,0,0,\(md5b),2,\(s2)\n3,0,1,\(md5a),4,\(s3)\n4,1,1,\(md5b),0,\n" + skeletonExtra
        return (writeFile(dir, "skeleton.csv", skeleton), writeFile(dir, "common.csv", common))
    }

    func testPrepareJoinsCommonFeaturesInSkeletonOrder() throws {
        let (skeleton, common) = writeSample()
        let out = dir + "/raw.fcache"
        let summary = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: ReadOptions(), to: out, groupRows: 3)
        XCTAssertEqual(summary.rows, 4)
        XCTAssertEqual(summary.groups, 2)
        XCTAssertEqual(summary.sharedRecords, 2)
        let cache = try ColumnarCache(path: out)
        XCTAssertEqual(cache.footer.version, 2)
        XCTAssertEqual(cache.layout.categorical, ["101", "109_14", "121", "205", "206", "508"])
        XCTAssertEqual(cache.layout.multiValued, ["109_14", "508"], "declared Ali-CCP lists and crosses")
        XCTAssertEqual(cache.footer.rowColumns, ["205", "206"], "user fields live in the shared records")
        var o = ReadOptions()
        o.inconsistent = .keep
        let t = try TableSource.readTraining(out, options: o)
        XCTAssertEqual(t.rowCount, 4)
        XCTAssertEqual(t.sourceRows, [0, 1, 2, 3])
        XCTAssertEqual(t.click, [1, 0, 0, 1])
        XCTAssertEqual(t.conversion, [0, 0, 1, 1])
        XCTAssertEqual(t.keys[0], [7, 8, 7, 8], "101 from the common record of each row's md5")
        XCTAssertEqual(t.keys[2], [3, 4, 3, 4])
        XCTAssertEqual(t.keys[3], [900, 901, 902, CategoryKey.empty], "a row without features has empty single-valued fields")
        let lists = t.bags[0], crosses = t.bags[1]
        XCTAssertEqual(lists.offsets, [0, 3, 3, 6, 6])
        XCTAssertEqual(lists.keys, [50, 51, 52, 50, 51, 52])
        XCTAssertEqual(lists.weights, [2, 5, 1, 2, 5, 1], "feature values are the weights")
        XCTAssertEqual(crosses.offsets, [0, 1, 1, 3, 3])
        XCTAssertEqual(crosses.keys, [60, 61, 62])
        XCTAssertEqual(crosses.weights, [2, 3, 1.5])
        // The default policy drops buy=1, click=0 (row 3), as for every other layout.
        XCTAssertEqual(try TableSource.readTraining(out, options: ReadOptions()).sourceRows, [0, 1, 3])
        // --max-values keeps the highest weights when the cache is read.
        o.maxValues = 2
        let capped = try TableSource.readTraining(out, options: o)
        XCTAssertEqual(capped.bags[0].keys, [50, 51, 50, 51])
        XCTAssertEqual(capped.layout.maxValues, 2)
    }

    /// A request-level read keeps a record's own lists once (`PerRequestBags`), the rows' copies
    /// empty; a batch filled from it, per row or grouped, sees what the per-row read gives.
    func testARequestLevelReadKeepsARecordsListsOnce() throws {
        let (skeleton, common) = writeSample()
        let out = dir + "/raw.fcache"
        _ = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: ReadOptions(), to: out, groupRows: 3)
        let cache = try ColumnarCache(path: out)
        XCTAssertEqual(cache.requestFields, ["101", "109_14", "121"])
        let once = try cache.group(0, layout: cache.layout, requireLabels: true, dayColumn: nil, requestLevel: true)
        let rows = try cache.group(0, layout: cache.layout, requireLabels: true, dayColumn: nil)
        XCTAssertEqual(once.keys, rows.keys, "single-valued request fields are set on every row")
        XCTAssertEqual(once.bags[0].offsets, [0, 0, 0, 0], "the rows' copies of the list are empty")
        XCTAssertEqual(once.bags[1], rows.bags[1], "the crosses are the impressions' own")
        let p = try XCTUnwrap(once.requests?.perRequest)
        XCTAssertEqual(p.fields, ["109_14"])
        XCTAssertEqual(p.rowRequest, [0, 1, 0])
        XCTAssertEqual(p.bags[0].offsets, [0, 3, 3, 3], "record a's 3 values, record b's none, the empty row")
        XCTAssertEqual(p.bags[0].keys, [50, 51, 52])
        XCTAssertNil(rows.requests?.perRequest)
        let schema = FeatureSchema.fit(rows, minCount: 1)
        let (a, b) = (schema.encode(once), schema.encode(rows))
        for grouping in [nil, RequestGrouping(fields: [0, 1, 2], keepsRowBags: false)] {
            let net = FunnelNetwork(config: ModelConfig(kind: .esmm), embeddingRows: schema.embeddingRows, fields: 6, denseCount: 0,
                                    bagFields: [1, 5], maxBagValues: 5)
            let plan = grouping.flatMap { net.sharingPlan(for: $0.fields) }
            let (x, y) = (Batch(capacity: 3, fields: 6, denseCount: 0, sharing: plan), Batch(capacity: 3, fields: 6, denseCount: 0, sharing: plan))
            x.fill(from: a, start: 0, count: 3)
            y.fill(from: b, start: 0, count: 3)
            XCTAssertEqual(x.bags, y.bags)
            XCTAssertEqual(x.requestBags, y.requestBags)
            XCTAssertEqual(x.requestCount, grouping == nil ? 0 : 2)
        }
    }

    /// Training on a request-level read (a request's lists kept once) fits the same vocabularies
    /// (each list value counted once per row, as if copied: `--min-count 2` depends on it) and
    /// trains the same weights as on the per-row read, sharing requests either way.
    func testTrainingOnARequestLevelReadEqualsThePerRowRead() throws {
        var sim = SimulatorConfig()
        (sim.rows, sim.seed, sim.vocabScale) = (3_000, 5, 0.05)
        var simulator = AliCCPRawSimulator(config: sim)
        simulator.impressionsPerRecord = 8
        _ = try simulator.write(to: dir)
        let out = dir + "/train.fcache"
        _ = try AliCCPRawLayout.prepare(skeleton: dir + "/sample_skeleton_train.csv", common: dir + "/common_features_train.csv",
                                        options: ReadOptions(), to: out, groupRows: 500)
        var config = ModelConfig(kind: .esmm)
        (config.embeddingDim, config.hidden, config.batchSize, config.pooling) = (4, [8], 64, .mean)
        var weights: [[Float]] = [], vocabularies: [[Int]] = []
        for level in [false, true] {
            var o = ReadOptions()
            o.requestLevel = level
            let (schema, data, _) = try DatasetLoader.loadForTraining(out, options: o, minCount: 2)
            XCTAssertEqual(data.requests?.perRequest != nil, level)
            vocabularies.append(schema.fields.map(\.count))
            let net = try FunnelNetwork(config: config, schema: schema, maxBatch: RequestBatches.largestBatch(batchSize: 64), workers: 2,
                                        maxBagValues: data.maxBagValues)
            XCTAssertNotNil(net.shareRequests(fields: data.requests!.fields))
            _ = try Trainer(config: config).train(net, on: data)
            weights.append(net.parameters.flatMap { p in (0..<p.count).map { p.value[$0] } })
        }
        XCTAssertEqual(vocabularies[0], vocabularies[1])
        // Every key's count, not only which keys pass --min-count.
        var counted: [[[Int64: Int]]] = []
        for level in [false, true] {
            var o = ReadOptions()
            o.requestLevel = level
            let raw = try TableSource.readTraining(out, options: o)
            var acc = FeatureSchema.Accumulator(layout: raw.layout)
            acc.add(raw)
            counted.append(acc.counts)
        }
        XCTAssertEqual(counted[0], counted[1])
        XCTAssertEqual(weights[0].count, weights[1].count)
        for i in weights[0].indices { XCTAssertEqual(weights[0][i], weights[1][i], accuracy: 1e-5, "weight \(i)") }
        // Streamed through shuffle buffers (request-level groups joined per buffer): the same again.
        let cache = try ColumnarCache(path: out)
        var streamed: [[Float]] = [], sizes: [Int] = []
        for level in [false, true] {
            var o = ReadOptions()
            o.requestLevel = level
            let fitted = try StreamingCacheChunks.fitSchema(cache, options: o, minCount: 2)
            sizes.append(fitted.maxBagValues)
            let source = StreamingCacheChunks(cache: cache, schema: fitted.schema, options: o, bufferRows: 1_100, rows: fitted.rows,
                                              clicks: fitted.clicks)
            let net = try FunnelNetwork(config: config, schema: fitted.schema, maxBatch: RequestBatches.largestBatch(batchSize: 64), workers: 2,
                                        maxBagValues: fitted.maxBagValues)
            XCTAssertNotNil(net.shareRequests(fields: cache.requestFields.compactMap(fitted.schema.layout.categorical.firstIndex(of:))))
            let trainer = Trainer(config: config)
            trainer.requestBatches = true
            _ = try trainer.train(net, chunks: source)
            streamed.append(net.parameters.flatMap { p in (0..<p.count).map { p.value[$0] } })
        }
        XCTAssertEqual(sizes[0], sizes[1], "the most values a row has, request-level lists included")
        for i in streamed[0].indices { XCTAssertEqual(streamed[0][i], streamed[1][i], accuracy: 1e-5, "streamed weight \(i)") }
    }

    func testAFieldInBothFilesOrRepeatedIsMultiValuedWithSkeletonValuesFirst() throws {
        let common = writeFile(dir, "c.csv", "\(md5a),3,\(features([("101", 7, "1"), ("301", 2, "1"), ("777", 1, "4")]))\n")
        let skeleton = writeFile(dir, "s.csv", "1,0,0,\(md5a),3,\(features([("301", 9, "1"), ("888", 5, "1"), ("888", 6, "2")]))\n")
        let out = dir + "/x.fcache"
        _ = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: ReadOptions(), to: out)
        let cache = try ColumnarCache(path: out)
        XCTAssertEqual(cache.layout.multiValued, ["301", "888"])
        let t = try TableSource.readTraining(out, options: ReadOptions())
        XCTAssertEqual(t.bags[0].keys, [9, 2], "skeleton values, then the common record's")
        XCTAssertEqual(t.bags[1].keys, [5, 6])
        XCTAssertEqual(t.keys[cache.layout.categorical.firstIndex(of: "777")!], [1])
        // --ignore drops a field; --multi-valued declares one.
        var o = ReadOptions()
        o.ignore = ["101"]
        o.multiValued = ["777"]
        _ = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: o, to: out)
        let again = try ColumnarCache(path: out)
        XCTAssertEqual(again.layout.ignored, ["101"])
        XCTAssertEqual(again.layout.multiValued, ["301", "777", "888"])
    }

    func testBadInputIsLocatedOrSkippedAndCounted() throws {
        let cases: [(skeleton: String, common: String, saying: String, line: Int, file: String)] = [
            ("5,1,0,\(md5a),2,\(features([("205", 1, "1")]))\n", "", "says 2 but the list has 1", 5, "skeleton.csv"),
            ("5,1,0,ffff,1,\(features([("205", 1, "1")]))\n", "", "is not in", 5, "skeleton.csv"),
            ("5,2,0,\(md5a),1,\(features([("205", 1, "1")]))\n", "", "label must be 0 or 1, got '2'", 5, "skeleton.csv"),
            ("5,1,0,\(md5a),1,205\u{02}1\n", "", "is not field\\x02feature_id\\x03value", 5, "skeleton.csv"),
            ("5,1,0,\(md5a),1,205\u{02}x\u{03}1\n", "", "feature id 'x' is not an integer", 5, "skeleton.csv"),
            ("5,1,0,\(md5a),1,205\u{02}1\u{03}inf\n", "", "is not a finite number", 5, "skeleton.csv"),
            ("5,1,0,\(md5a),2,\(features([("205", 1, "1"), ("205", 2, "1")]))\n", "", "repeats in this row", 5, "skeleton.csv"),
            ("5,1,0\n", "", "expected 6 comma-separated fields", 5, "skeleton.csv"),
            ("5,1,0,\(md5a),99999999,\(features([("205", 1, "1")]))\n", "", "is not a count in 0…", 5, "skeleton.csv"),
            ("", "\(md5a),1,\(features([("101", 1, "1")]))\n", "already appeared on line 1", 3, "common.csv"),
        ]
        for c in cases {
            let (skeleton, common) = writeSample(skeletonExtra: c.skeleton, commonExtra: c.common)
            // The layout is inferred from the 4 good lines (a field repeated there would be multi-valued).
            XCTAssertThrowsError(try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: ReadOptions(), to: dir + "/e.fcache",
                                                       sampleRows: 4)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(c.saying), "\(c.saying): \(text)")
                XCTAssertTrue(text.contains("\(c.file):\(c.line):"), "names file and line: \(text)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/e.fcache"), "no cache is left behind")
            var o = ReadOptions()
            o.skipBadRows = true
            let s = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: o, to: dir + "/e.fcache", sampleRows: 4)
            XCTAssertEqual(s.report.skippedTotal, 1, c.saying)
            XCTAssertEqual(s.rows, 4, c.saying)
            try FileManager.default.removeItem(atPath: dir + "/e.fcache")
        }
    }

    func testHostileCountsAreRefusedBeforeReading() throws {
        let (skeleton, common) = writeSample(skeletonExtra: "5,1,0,\(md5a),1,\(String(repeating: "205\u{02}1\u{03}1\u{01}", count: 3))\n")
        XCTAssertThrowsError(try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: ReadOptions(), to: dir + "/e.fcache")) {
            XCTAssertTrue("\($0)".contains("more than 1 features"), "\($0)")
        }
    }

    func testDamagedSharedSectionIsRefused() throws {
        let (skeleton, common) = writeSample()
        let out = dir + "/raw.fcache"
        _ = try AliCCPRawLayout.prepare(skeleton: skeleton, common: common, options: ReadOptions(), to: out)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        bytes[20] ^= 0xFF  // inside the first shared record
        try bytes.write(to: URL(fileURLWithPath: out))
        XCTAssertThrowsError(try ColumnarCache(path: out)) { XCTAssertTrue("\($0)".contains("shared section checksum mismatch"), "\($0)") }
    }

    func testSimulatedRawDataPreparesAndMatchesItsLastValueCopyOnSingleFields() throws {
        var config = SimulatorConfig()
        config.rows = 3_000
        config.seed = 5
        let summary = try AliCCPRawSimulator(config: config).write(to: dir)
        XCTAssertEqual(summary.trainRows + summary.testRows, 3_000)
        let out = dir + "/train.fcache"
        let s = try AliCCPRawLayout.prepare(skeleton: dir + "/sample_skeleton_train.csv", common: dir + "/common_features_train.csv",
                                      options: ReadOptions(), to: out, groupRows: 1_000)
        XCTAssertEqual(s.rows, summary.trainRows)
        var o = ReadOptions()
        o.inconsistent = .keep
        let raw = try TableSource.readTraining(out, options: o)
        let last = try TableSource.readTraining(dir + "/train_last_value.csv", options: o)
        XCTAssertEqual(raw.rowCount, last.rowCount)
        XCTAssertEqual(raw.click, last.click)
        XCTAssertEqual(raw.conversion, last.conversion)
        for name in ["101", "121", "205", "206", "301"] {
            XCTAssertEqual(raw.keys[raw.layout.categorical.firstIndex(of: name)!], last.keys[last.layout.categorical.firstIndex(of: name)!], name)
        }
        // The last-value copy keeps each list's last value.
        let b = raw.layout.multiValued.firstIndex(of: "109_14")!, lastColumn = last.keys[last.layout.categorical.firstIndex(of: "109_14")!]
        for r in 0..<raw.rowCount {
            XCTAssertEqual(raw.bags[b].keys[Int(raw.bags[b].offsets[r + 1]) - 1], lastColumn[r])
        }
        XCTAssertGreaterThan(Double(raw.bags[b].keys.count) / Double(raw.rowCount), 5, "behaviour lists have many values")
        // Deterministic with a seed.
        let again = try AliCCPRawSimulator(config: config).write(to: dir + "/again")
        XCTAssertEqual(again.bytes, summary.bytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/again/common_features_train.csv")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/common_features_train.csv")))
    }

    func testMultiValuedCSVCachesReadAsTheCSVDoesAndSingleValuedStayVersion1() throws {
        let csv = writeFile(dir, "m.csv", "click,purchase,user,hist\n1,0,3,a|b:2|c\n0,0,4,\n1,1,3,b:0.5\n")
        var o = ReadOptions()
        o.multiValued = ["hist"]
        let out = dir + "/m.fcache"
        _ = try ColumnarCache.prepare(source: csv, options: o, to: out, groupRows: 2)
        XCTAssertEqual(try ColumnarCache(path: out).footer.version, 2)
        let fromCSV = try TableSource.readTraining(csv, options: o)
        let fromCache = try TableSource.readTraining(out, options: ReadOptions())
        XCTAssertEqual(fromCSV.keys, fromCache.keys)
        XCTAssertEqual(fromCSV.bags, fromCache.bags)
        XCTAssertEqual(fromCSV.textTokens, fromCache.textTokens)
        let single = writeFile(dir, "s.csv", "click,purchase,user\n1,0,3\n")
        _ = try ColumnarCache.prepare(source: single, options: ReadOptions(), to: dir + "/s.fcache")
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/s.fcache")).prefix(8)), Array("FUNNELC".utf8) + [1])
        XCTAssertThrowsError(try TableSource.readTraining(out, options: o), "column roles of a cache are fixed")
    }
}
