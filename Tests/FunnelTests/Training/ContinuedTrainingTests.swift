import Foundation
import XCTest
@testable import Funnel

/// `train --init-from PREV` on new data: grown vocabularies, carried optimizer state, refusals.
final class ContinuedTrainingTests: XCTestCase {
    /// A day of impressions: categorical fields `a` (values `values`) and `b` (1…4), labels drawn
    /// from a fixed generator; the first rows walk through every value so each day knows them all.
    static func day(rows: Int, values: ClosedRange<Int>, seed: UInt64, dense: Bool = false) -> String {
        var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        func next() -> UInt64 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return state >> 33 }
        var text = "click,purchase,a,b" + (dense ? ",x" : "") + "\n"
        for i in 0..<rows {
            let a = i < values.count ? values.lowerBound + i : values.lowerBound + Int(next() % UInt64(values.count))
            let b = 1 + i % 4
            let click = (next() % 100) < UInt64(20 + 5 * (a % 4)) ? 1 : 0
            let buy = click == 1 && (next() % 100) < UInt64(20 + 10 * b) ? 1 : 0
            text += "\(click),\(buy),\(a),\(b)" + (dense ? String(format: ",%.3f", Double(next() % 1000) / 100) : "") + "\n"
        }
        return text
    }

    static func config(_ kind: ModelKind, trunk: TrunkKind? = nil) -> ModelConfig {
        var c = ModelConfig(kind: kind)
        if let trunk { c.trunk = trunk }
        c.shuffle = false
        c.batchSize = 50
        c.embeddingDim = 4
        c.hidden = [8, 4]
        c.learningRate = 0.01
        return c
    }

    static func train(_ file: String, out: String, _ config: ModelConfig, from: String? = nil, saveState: Bool = false) throws -> TrainingOutcome {
        var r = TrainingRequest(train: file, out: out, config: config)
        r.threads = 1
        r.initFrom = from
        r.saveOptimizerState = saveState
        return try TrainingJob.run(r)
    }

    static func weights(_ dir: String) throws -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: try TrainedModel.load(from: dir).network.parameters.map { ($0.name, $0.value.array) })
    }

    static func maxDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> Float {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        return a.keys.map { k in zip(a[k]!, b[k]!).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
    }

    /// Days 1–2 in one run equal day 1, saved with Adam's state, continued on day 2 (same batches:
    /// no shuffling, day 1 a whole number of batches, day 2 bringing no new id). Without the
    /// optimizer state the continued weights differ — Adam restarts — which this test also shows.
    func testContinuingWithOptimizerStateEqualsNotHavingStopped() throws {
        let dir = makeTempDirectory("continue-equal")
        let day1 = Self.day(rows: 400, values: 1...12, seed: 1), day2 = Self.day(rows: 300, values: 1...12, seed: 2)
        let one = writeFile(dir, "day1.csv", day1), two = writeFile(dir, "day2.csv", day2)
        let both = writeFile(dir, "both.csv", day1 + day2.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n")
        for (kind, trunk) in [(ModelKind.esmm, TrunkKind?.none), (.mmoe, nil), (.esmm, .dcn)] {
            let c = Self.config(kind, trunk: trunk), tag = kind.rawValue + (trunk?.rawValue ?? "")
            _ = try Self.train(both, out: dir + "/all-\(tag)", c)
            _ = try Self.train(one, out: dir + "/d1-\(tag)", c, saveState: true)
            let continued = try Self.train(two, out: dir + "/d2-\(tag)", c, from: dir + "/d1-\(tag)")
            XCTAssertEqual(continued.continued?.optimizerState, true)
            XCTAssertEqual(continued.continued?.addedRows, 0)
            XCTAssertEqual(continued.continued?.startingSteps, [8])
            let gap = Self.maxDifference(try Self.weights(dir + "/all-\(tag)"), try Self.weights(dir + "/d2-\(tag)"))
            XCTAssertLessThanOrEqual(gap, 1e-6, "\(tag): continuing with Adam's state must equal the uninterrupted run")
            _ = try Self.train(one, out: dir + "/d1-warm-\(tag)", c)
            _ = try Self.train(two, out: dir + "/d2-warm-\(tag)", c, from: dir + "/d1-warm-\(tag)")
            let warm = Self.maxDifference(try Self.weights(dir + "/all-\(tag)"), try Self.weights(dir + "/d2-warm-\(tag)"))
            XCTAssertGreaterThan(warm, 1e-4, "\(tag): a warm start without Adam's state is a different run")
        }
    }

    /// Ids new on day 2 get rows after the field's old ones; every known id keeps its row (and
    /// its Adam moments), new rows start as a fresh model's, and before any step the continued
    /// network predicts day 1 exactly as the saved model.
    func testContinuingGrowsVocabulariesAndKeepsKnownRows() throws {
        let dir = makeTempDirectory("continue-grow")
        let one = writeFile(dir, "day1.csv", Self.day(rows: 300, values: 1...6, seed: 3))
        let two = writeFile(dir, "day2.csv", Self.day(rows: 300, values: 4...9, seed: 4))
        let c = Self.config(.esmm)
        _ = try Self.train(one, out: dir + "/d1", c, saveState: true)
        let continuation = try ModelContinuation(directory: dir + "/d1", config: c)
        let (grown, _, _) = try DatasetLoader.loadForTraining(two, options: ReadOptions(), minCount: 1, growing: continuation.schema)
        XCTAssertEqual(grown.fields[0].values, ["1", "2", "3", "4", "5", "6", "7", "8", "9"])
        XCTAssertEqual(grown.fields[1].values, ["1", "2", "3", "4"])
        let net = try FunnelNetwork(config: c, schema: grown)
        let fresh = try FunnelNetwork(config: c, schema: grown)
        let growth = try continuation.start(net, schema: grown)
        XCTAssertEqual(growth.keptRows, 7 + 5)
        XCTAssertEqual(growth.addedRows, 3)
        let old = continuation.previous.network.parameters.first { $0.name == "embedding" }!
        let new = net.parameters.first { $0.name == "embedding" }!, freshTable = fresh.parameters.first { $0.name == "embedding" }!
        let width = c.embeddingDim, oldOffsets = continuation.previous.schema.fieldOffsets, newOffsets = grown.fieldOffsets
        for (k, field) in grown.fields.enumerated() {
            for id in 0..<field.size {
                let row = Array(new.value.buffer[(newOffsets[k] + id) * width ..< (newOffsets[k] + id + 1) * width])
                let known = id < continuation.previous.schema.fields[k].size
                let expected = known ? Array(old.value.buffer[(oldOffsets[k] + id) * width ..< (oldOffsets[k] + id + 1) * width])
                    : Array(freshTable.value.buffer[(newOffsets[k] + id) * width ..< (newOffsets[k] + id + 1) * width])
                XCTAssertEqual(row, expected, "field \(field.name) id \(id)")
                let m = Array(new.moment1!.buffer[(newOffsets[k] + id) * width ..< (newOffsets[k] + id + 1) * width])
                if !known { XCTAssertEqual(m, [Float](repeating: 0, count: width)) }
            }
        }
        let (dayOne, _) = try DatasetLoader.load(one, schema: grown, options: ReadOptions(), requireLabels: true)
        let (dayOneOld, _) = try DatasetLoader.load(one, schema: continuation.previous.schema, options: ReadOptions(), requireLabels: true)
        XCTAssertEqual(net.predict(dayOne).ctcvr, continuation.previous.network.predict(dayOneOld).ctcvr)
        // Trained on: the next model knows every id and saves the grown tables.
        let next = try Self.train(two, out: dir + "/d2", c, from: dir + "/d1")
        XCTAssertEqual(next.tableRows["a"], 10)
        XCTAssertEqual(try TrainedModel.load(from: dir + "/d2").schema.fields[0].values.count, 9)
    }

    /// Dense statistics carried over are the running statistics of both days: equal to fitting
    /// the two days together.
    func testDenseStatisticsCombineToTheStatisticsOfBothDays() throws {
        let dir = makeTempDirectory("continue-dense")
        let d1 = Self.day(rows: 200, values: 1...5, seed: 5, dense: true), d2 = Self.day(rows: 500, values: 1...5, seed: 6, dense: true)
        let one = writeFile(dir, "d1.csv", d1), two = writeFile(dir, "d2.csv", d2)
        let both = writeFile(dir, "both.csv", d1 + d2.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n")
        let (s1, _, _) = try DatasetLoader.loadForTraining(one, options: ReadOptions(), minCount: 1)
        let (s12, _, _) = try DatasetLoader.loadForTraining(both, options: ReadOptions(), minCount: 1)
        let previous = PreviousSchema(schema: s1, rows: 200, directory: dir)
        let (grown, _, _) = try DatasetLoader.loadForTraining(two, options: ReadOptions(), minCount: 1, growing: previous)
        XCTAssertEqual(grown.dense[0].count, 700)
        XCTAssertEqual(grown.dense[0].mean, s12.dense[0].mean, accuracy: 1e-12)
        XCTAssertEqual(grown.dense[0].std, s12.dense[0].std, accuracy: 1e-12)
        XCTAssertNotEqual(grown.dense[0].mean, s1.dense[0].mean)
    }

    /// Another model kind, a shape, other columns, other hashing, a damaged optimizer state:
    /// refused in words, nothing written.
    func testIncompatibleContinuationsAreRefused() throws {
        let dir = makeTempDirectory("continue-refuse")
        let one = writeFile(dir, "day1.csv", Self.day(rows: 200, values: 1...5, seed: 7))
        let c = Self.config(.esmm)
        _ = try Self.train(one, out: dir + "/d1", c, saveState: true)
        func refuses(_ what: String, _ expected: String, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), what) { XCTAssertTrue("\($0)".contains(expected), "\(what): \($0)") }
        }
        refuses("kind", "model is mmoe") { _ = try Self.train(one, out: dir + "/x", Self.config(.mmoe, trunk: .mmoe), from: dir + "/d1") }
        var wide = c
        wide.hidden = [16, 4]
        refuses("shape", "--hidden") { _ = try Self.train(one, out: dir + "/x", wide, from: dir + "/d1") }
        let extra = writeFile(dir, "extra.csv", "click,purchase,a,b,c\n1,0,1,2,3\n0,0,2,1,3\n")
        refuses("columns", "its columns differ") { _ = try Self.train(extra, out: dir + "/x", c, from: dir + "/d1") }
        var hashed = TrainingRequest(train: one, out: dir + "/x", config: c)
        hashed.initFrom = dir + "/d1"
        hashed.read.hashBuckets = HashBuckets(all: 8)
        refuses("hashing", "--hash-buckets differs") { _ = try TrainingJob.run(hashed) }
        let state = dir + "/d1/" + OptimizerState.fileName
        var bytes = try Data(contentsOf: URL(fileURLWithPath: state))
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: state))
        refuses("damaged state", "optimizer state is damaged") { _ = try Self.train(one, out: dir + "/x", c, from: dir + "/d1") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x"))
    }

    /// Every model kind continues with Adam's state on a table with a multi-valued field and a
    /// hashed one: multi-stage models carry each stage's step count, the hashed field keeps its
    /// buckets, the list's vocabulary grows.
    func testEveryModelKindContinuesOnListsAndHashedFields() throws {
        let dir = makeTempDirectory("continue-kinds")
        func day(_ seed: UInt64, values: ClosedRange<Int>) -> String {
            var text = "click,purchase,a,b,tags\n"
            var x = seed
            for i in 0..<240 {
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let r = Int(x >> 40)
                let a = values.lowerBound + r % values.count, click = i % 3 == 0 ? 1 : 0
                text += "\(click),\(click == 1 && r % 4 == 0 ? 1 : 0),\(a),\(r % 50),\(a)|\(a + 1):0.5|\(r % 7 + values.lowerBound)\n"
            }
            return text
        }
        let one = writeFile(dir, "d1.csv", day(1, values: 1...8)), two = writeFile(dir, "d2.csv", day(2, values: 5...12))
        var read = ReadOptions()
        (read.multiValued, read.hashBuckets) = (["tags"], HashBuckets(perField: ["b": 16]))
        for kind in ModelKind.allCases {
            var c = Self.config(kind, trunk: kind.requiredTrunk)
            if kind.requiredTrunk != nil { c.hidden = [8] }
            c.pooling = .mean
            var r1 = TrainingRequest(train: one, out: dir + "/\(kind.rawValue)-1", config: c)
            (r1.read, r1.saveOptimizerState, r1.threads) = (read, true, 1)
            _ = try TrainingJob.run(r1)
            var r2 = TrainingRequest(train: two, out: dir + "/\(kind.rawValue)-2", config: c)
            (r2.initFrom, r2.threads) = (r1.out, 1)  // no read options: the saved model's roles, hashing and lists
            let next = try TrainingJob.run(r2)
            let stages = c.architecture.stages.count
            XCTAssertEqual(next.continued?.startingSteps.count, stages, kind.rawValue)
            XCTAssertTrue(next.continued?.startingSteps.allSatisfy { $0 > 0 } ?? false, "\(kind.rawValue): \(String(describing: next.continued))")
            let model = try TrainedModel.load(from: r2.out)
            XCTAssertEqual(model.schema.fields[1].hashBuckets, 16, kind.rawValue)
            XCTAssertEqual(model.schema.layout.multiValued, ["tags"], kind.rawValue)
            XCTAssertGreaterThan(model.schema.fields[2].count, try TrainedModel.load(from: r1.out).schema.fields[2].count, kind.rawValue)
        }
    }
}
