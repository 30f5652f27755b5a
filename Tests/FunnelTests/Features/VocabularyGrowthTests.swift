import Foundation
import XCTest
@testable import Funnel

/// Admission, eviction and capacity across continued runs (`VocabularyPolicy`, `VocabularyGrowth`).
final class VocabularyGrowthTests: XCTestCase {
    /// A CSV of one categorical field `a` holding `ids` in order (and `day` when given).
    static func csv(_ dir: String, _ name: String, _ ids: [Int], days: [Int]? = nil) -> String {
        var text = "click,purchase,a" + (days == nil ? "" : ",day") + "\n"
        for (i, id) in ids.enumerated() { text += "\(i % 3 == 0 ? 1 : 0),0,\(id)" + (days.map { ",\($0[i])" } ?? "") + "\n" }
        return writeFile(dir, name, text)
    }

    static func fit(_ path: String, policy: VocabularyPolicy?, after previous: FeatureSchema? = nil) throws -> (FeatureSchema, [String]) {
        var o = ReadOptions()
        o.vocabularyPolicy = policy
        o.dayColumn = policy?.dayColumn
        if let previous { o = try ContinuedSchema.readOptions(o, continuing: previous, from: "prev") }
        let (schema, _, report) = try DatasetLoader.loadForTraining(path, options: o, minCount: 1,
                                                                   growing: previous.map { PreviousSchema(schema: $0, rows: 0, directory: "prev") })
        return (schema, report.schemaNotes)
    }

    func testIdsAreAdmittedOnceTheirCountAcrossRunsReachesTheThreshold() throws {
        let dir = makeTempDirectory("admit")
        let policy = VocabularyPolicy(admitMinCount: 3)
        let (s1, notes) = try Self.fit(Self.csv(dir, "d1.csv", [7, 7, 7, 8, 8, 9]), policy: policy)
        XCTAssertEqual(s1.fields[0].values, ["7"])
        XCTAssertEqual(s1.fields[0].pending.map(\.key), [8, 9])
        XCTAssertEqual(s1.fields[0].pending.map(\.count), [2, 1])
        XCTAssertTrue(notes.contains { $0.contains("field a: 1 values (1 admitted, 0 evicted), 2 pending") }, "\(notes)")
        let (s2, _) = try Self.fit(Self.csv(dir, "d2.csv", [8, 9, 10]), policy: nil, after: s1)
        XCTAssertEqual(s2.vocabularyPolicy, policy, "the saved policy applies again")
        XCTAssertEqual(s2.fields[0].values, ["7", "8"], "8: 2 + 1 occurrences; 9: 1 + 1; 10: 1")
        XCTAssertEqual(s2.fields[0].pending.map(\.key), [9, 10])
        XCTAssertEqual(s2.fields[0].usage(at: 1)?.occurrences, 3)
        XCTAssertEqual(s2.fields[0].usage(at: 0)?.occurrences, 3, "7 was not seen again")
    }

    /// Without a day column every run is a day: ids unseen for D runs are dropped, their ids map
    /// to the out-of-vocabulary row; with one, the data's days decide.
    func testIdsUnseenForDDaysAreEvicted() throws {
        let dir = makeTempDirectory("evict")
        let policy = VocabularyPolicy(evictUnseenDays: 2)
        let (s1, _) = try Self.fit(Self.csv(dir, "r1.csv", [1, 2, 3, 4]), policy: policy)
        let (s2, _) = try Self.fit(Self.csv(dir, "r2.csv", [3, 4, 5]), policy: nil, after: s1)
        XCTAssertEqual(s2.fields[0].values, ["1", "2", "3", "4", "5"], "1 and 2 were seen 1 run ago")
        let (s3, notes) = try Self.fit(Self.csv(dir, "r3.csv", [4, 6]), policy: nil, after: s2)
        XCTAssertEqual(s3.clock, 3)
        XCTAssertEqual(s3.fields[0].values, ["3", "4", "5", "6"], "1 and 2 unseen since run 1: evicted at run 3")
        XCTAssertEqual(s3.fields[0].id(of: 1), 0)
        XCTAssertTrue(notes.contains { $0.contains("2 evicted") }, "\(notes)")
        let days = VocabularyPolicy(evictUnseenDays: 5, dayColumn: "day")
        let (d1, _) = try Self.fit(Self.csv(dir, "d1.csv", [1, 2, 3], days: [1, 4, 8]), policy: days)
        XCTAssertEqual(d1.clock, 8)
        XCTAssertEqual(d1.fields[0].values, ["2", "3"], "id 1, last seen on day 1, is 7 days old on day 8")
        let (d2, _) = try Self.fit(Self.csv(dir, "d2.csv", [3, 5], days: [9, 10]), policy: nil, after: d1)
        XCTAssertEqual(d2.fields[0].values, ["3", "5"], "id 2, last seen on day 4, is 6 days old on day 10")
        XCTAssertEqual(d2.fields[0].usage(at: 0)?.lastSeen, 9)
    }

    func testFieldsKeepTheirMostFrequentValuesAndPendingIdsTheirCapacity() throws {
        let dir = makeTempDirectory("cap")
        let (s1, _) = try Self.fit(Self.csv(dir, "d1.csv", [1, 1, 1, 2, 2, 3, 4]), policy: VocabularyPolicy(maxRowsPerField: 2))
        XCTAssertEqual(s1.fields[0].values, ["1", "2"])
        let (s2, _) = try Self.fit(Self.csv(dir, "d2.csv", [3, 3, 3, 3, 4]), policy: nil, after: s1)
        XCTAssertEqual(s2.fields[0].values, ["1", "3"], "3 (4 occurrences) displaces 2 (2); 1 has 3")
        let capped = VocabularyPolicy(admitMinCount: 10, pendingCapacity: 2)
        let (p1, notes) = try Self.fit(Self.csv(dir, "p1.csv", [5, 5, 5, 6, 6, 7]), policy: capped)
        XCTAssertEqual(p1.fields[0].pending.map(\.key), [5, 6])
        XCTAssertTrue(notes.contains { $0.contains("1 or fewer occurrences forgotten") }, "\(notes)")
    }

    /// End to end through model directories: the usage and pending ids survive a save (in
    /// vocabularies.bin); a continued model carries the surviving rows and their Adam moments
    /// to their new ids, leaves the evicted ones behind and reports both.
    func testAContinuedModelCarriesSurvivingRowsPastEvictedOnes() throws {
        let dir = makeTempDirectory("evict-train")
        var c = ModelConfig(kind: .esmm)
        (c.embeddingDim, c.hidden, c.batchSize, c.shuffle) = (3, [4], 4, false)
        func train(_ file: String, _ out: String, from: String? = nil, policy: VocabularyPolicy? = nil) throws -> TrainingOutcome {
            var r = TrainingRequest(train: file, out: dir + "/" + out, config: c)
            (r.initFrom, r.saveOptimizerState, r.read.vocabularyPolicy) = (from.map { dir + "/" + $0 }, true, policy)
            return try TrainingJob.run(r)
        }
        _ = try train(Self.csv(dir, "r1.csv", [1, 2, 3, 4, 1, 2, 3, 4]), "m1", policy: VocabularyPolicy(admitMinCount: 2, evictUnseenDays: 1))
        let m1 = try TrainedModel.load(from: dir + "/m1")
        XCTAssertEqual(m1.schema.fields[0].usage(at: 0)?.occurrences, 2)
        let next = try train(Self.csv(dir, "r2.csv", [2, 4, 5, 5, 6, 2, 4, 5]), "m2", from: "m1")
        XCTAssertEqual(next.continued?.evictedRows, 2, "1 and 3 unseen in run 2")
        XCTAssertEqual(next.continued?.addedRows, 1, "5 admitted (3 occurrences), 6 pending")
        let m2 = try TrainedModel.load(from: dir + "/m2")
        XCTAssertEqual(m2.schema.fields[0].values, ["2", "4", "5"])
        XCTAssertEqual(m2.schema.fields[0].pending.map(\.key), [6])
        // Started from m1 for m2's schema: ids 2 and 4 (m1's ids 2, 4; m2's 1, 2) and the OOV row
        // carry their rows and Adam moments; the new id 5's row is a fresh model's.
        XCTAssertEqual(EmbeddingRowMap(from: m1.schema, to: m2.schema).carriedRows, 3)
        let continuation = try ModelContinuation(directory: dir + "/m1", config: m1.config)
        let net = try FunnelNetwork(config: m1.config, schema: m2.schema), fresh = try FunnelNetwork(config: m1.config, schema: m2.schema)
        _ = try continuation.start(net, schema: m2.schema)
        func row(_ p: Parameter?, _ r: Int) -> [Float] { Array(p!.value.buffer[(r * 3)..<(r * 3 + 3)]) }
        let old = m1.network.parameters.first { $0.name == "embedding" }, new = net.parameters.first { $0.name == "embedding" }
        let oldMoments = try XCTUnwrap(continuation.optimizer?.moments["embedding"])
        for (o, n) in [(0, 0), (2, 1), (4, 2)] {
            XCTAssertEqual(row(new, n), row(old, o))
            XCTAssertEqual(Array(new!.moment1!.buffer[(n * 3)..<(n * 3 + 3)]), Array(oldMoments.m[(o * 3)..<(o * 3 + 3)]))
        }
        XCTAssertEqual(row(new, 3), row(fresh.parameters.first { $0.name == "embedding" }, 3))
        XCTAssertEqual(Array(new!.moment1!.buffer[9..<12]), [0, 0, 0])
    }

    /// Rules per field: `FIELD=N` wins over `N`; a rule naming no categorical field is refused.
    func testRulesApplyPerField() throws {
        let dir = makeTempDirectory("per-field")
        let file = writeFile(dir, "d.csv", "click,purchase,a,b\n1,0,1,7\n0,0,1,7\n1,0,2,8\n0,0,3,7\n")
        var policy = VocabularyPolicy()
        policy.admitMinCount = try VocabularyPolicy.Setting.parse("2,b=1", flag: "--admit-min-count")
        XCTAssertEqual(policy.admitMinCount, VocabularyPolicy.Setting(all: 2, perField: ["b": 1]))
        let (s, _) = try Self.fit(file, policy: policy)
        XCTAssertEqual(s.fields[0].values, ["1"], "a: twice at least")
        XCTAssertEqual(s.fields[1].values, ["7", "8"], "b: once is enough")
        policy.maxRowsPerField = VocabularyPolicy.Setting(perField: ["c": 1])
        XCTAssertThrowsError(try Self.fit(file, policy: policy)) { XCTAssertTrue("\($0)".contains("not a categorical field"), "\($0)") }
        XCTAssertThrowsError(try VocabularyPolicy.Setting.parse("b=0", flag: "--max-rows-per-field")) {
            XCTAssertTrue("\($0)".contains("--max-rows-per-field takes N or FIELD=N"), "\($0)")
        }
    }
}
