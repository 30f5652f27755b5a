import XCTest
@testable import Funnel

/// Vocabularies split over ranks by key range (`VocabularyShard`): the same ids as one process's
/// fit, every rank an equal share of every field, rows encoded at their owners exactly as the
/// whole vocabulary encodes them.
final class VocabularyShardTests: XCTestCase {
    /// Text values, integer values, a multi-valued column, a hashed field and two fields sharing
    /// one vocabulary; skewed counts so that `minCount` drops many values.
    private static func data(rows: Int) -> String {
        var text = "click,purchase,user,shop,item,also_item,tags\n", x: UInt64 = 7
        for i in 0..<rows {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let r = Int(x >> 33), skew = (r % 97) * (r % 89) / 40
            let click = i % 3 == 0 ? 1 : 0
            text += "\(click),\(click == 1 && r % 4 == 0 ? 1 : 0),user-\(skew % 150),s\(r % 40),\(skew),\(r % 300),"
                + "\(skew % 60)|\(r % 500):0.5|tag\(r % 9)\n"
        }
        return text
    }

    private func options() -> ReadOptions {
        var read = ReadOptions()
        (read.multiValued, read.hashBuckets) = (["tags"], HashBuckets(perField: ["shop": 16]))
        read.sharedVocabularies = SharedVocabularies(groups: [["item", "also_item"]])
        return read
    }

    func testSplitVocabulariesHoldOneProcesssIdsInEqualShares() throws {
        let dir = NSTemporaryDirectory() + "vocab-shard-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/train.csv"
        try Self.data(rows: 3_000).write(toFile: path, atomically: true, encoding: .utf8)
        let read = options()
        let (whole, all, report) = try DatasetLoader.loadForTraining(path, options: read, minCount: 3)
        for ranks in [2, 3] {
            let results = try InProcessRanks.run(size: ranks) { comm in
                let split = try DatasetLoader.loadForTraining(path, options: read, minCount: 3, communicator: comm, growing: nil,
                                                              splittingVocabularies: { _ in true })
                let gathered = try split.vocabulary!.gathered(everyRank: true)!
                let replicated = try DatasetLoader.loadForTraining(path, options: read, minCount: 3, communicator: comm, growing: nil,
                                                                   splittingVocabularies: { _ in false })
                return (split, gathered, replicated.schema, replicated.vocabulary == nil)
            }
            var held = [Int](repeating: 0, count: whole.fields.count)
            for (split, gathered, replicated, noShard) in results {
                XCTAssertTrue(noShard)
                XCTAssertEqual(split.schema.embeddingRows, whole.embeddingRows)
                XCTAssertEqual(split.report.schemaNotes, report.schemaNotes, "the hashed field's notes add up across ranks")
                for (k, f) in whole.fields.enumerated() {
                    XCTAssertEqual(gathered[k].values, f.values, "\(ranks) ranks, \(f.name): the slices joined are the whole vocabulary")
                    XCTAssertEqual(replicated.fields[k].values, f.values)
                    XCTAssertEqual((0..<f.count).map { gathered[k].usage(at: $0)!.occurrences }, (0..<f.count).map { f.usage(at: $0)!.occurrences })
                    XCTAssertEqual(split.schema.fields[k].count, f.count)
                    XCTAssertTrue(split.schema.fields[k].values.isEmpty, "the training schema holds counts only")
                    held[k] += split.vocabulary!.slices[k].hashBuckets == nil ? split.vocabulary!.slices[k].count : 0
                    // Equal contiguous runs: no rank holds more than its share of any field.
                    if f.hashBuckets == nil { XCTAssertLessThanOrEqual(split.vocabulary!.slices[k].count, (f.count + ranks - 1) / ranks) }
                }
                XCTAssertEqual(replicated.dense.map(\.mean), whole.dense.map(\.mean))
                // Each rank's rows encode to one process's ids for the same source rows.
                let local = split.data
                for i in 0..<local.rowCount {
                    let row = Int(local.sourceRows[i]) - 1
                    let j = try XCTUnwrap(all.sourceRows.firstIndex(of: local.sourceRows[i]), "row \(row)")
                    XCTAssertEqual(Array(local.ids[(i * local.fields)..<((i + 1) * local.fields)]),
                                   Array(all.ids[(j * all.fields)..<((j + 1) * all.fields)]), "row \(row)")
                    let (a, b) = (local.bags[0], all.bags[0])
                    XCTAssertEqual(Array(a.ids[Int(a.offsets[i])..<Int(a.offsets[i + 1])]), Array(b.ids[Int(b.offsets[j])..<Int(b.offsets[j + 1])]),
                                   "row \(row)'s tags")
                }
            }
            for (k, f) in whole.fields.enumerated() where f.hashBuckets == nil { XCTAssertEqual(held[k], f.count, f.name) }
            XCTAssertTrue(whole.fields.contains { $0.count >= 100 }, "a field large enough to split")
        }
    }

    /// Keys at the splitters' edges: a key below every owned one, the splitters themselves, keys
    /// between runs; an empty run (fewer values than ranks) owns nothing.
    func testOwnersOfKeysAtTheEdges() {
        let splitters: [Int64] = [10, 20, 20, .max]
        XCTAssertEqual(VocabularyShard.owner(of: .min, splitters), 0)
        XCTAssertEqual(VocabularyShard.owner(of: 9, splitters), 0)
        XCTAssertEqual(VocabularyShard.owner(of: 10, splitters), 1)
        XCTAssertEqual(VocabularyShard.owner(of: 19, splitters), 1)
        XCTAssertEqual(VocabularyShard.owner(of: 20, splitters), 3, "rank 2's range [20, 20) is empty")
        XCTAssertEqual(VocabularyShard.owner(of: .max - 1, splitters), 3)
        for key: Int64 in [-5, 0, 7, 1 << 40] {
            let owner = VocabularyShard.owner(hashed: key, buckets: 16, ranks: 3)
            XCTAssertTrue((0..<3).contains(owner))
        }
    }

    /// Shard files read as one vocabulary: every id, key, text and usage as the whole field's,
    /// empty pieces skipped; an index whose pieces do not follow one another is refused.
    func testVocabularyShardFilesReadAsTheWholeVocabulary() throws {
        let dir = NSTemporaryDirectory() + "vocab-files-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let values = (0..<50).map { $0 % 7 == 0 ? "v\($0)" : "\($0 * 3)" }.sorted { CategoryKey.of($0) < CategoryKey.of($1) }
        let whole = FieldVocabulary(name: "f", values: values, occurrences: values.indices.map { UInt32($0 + 2) },
                                    lastSeen: values.indices.map { Int32($0 % 5) }, pending: [])
        let cuts = [0, 0, 17, 17, 50]  // pieces of 0, 17, 0 and 33 values
        var checksums: [String: String] = [:]
        for p in 0..<4 {
            let range = cuts[p]..<cuts[p + 1]
            let piece = FieldVocabulary(name: "f", values: Array(values[range]), occurrences: range.map { UInt32($0 + 2) },
                                        lastSeen: range.map { Int32($0 % 5) }, pending: [])
            let data = try VocabularyFile.encode([piece])
            try data.write(to: URL(fileURLWithPath: dir + "/" + ShardedVocabularyIndex.fileName(shard: p + 1, of: 4)))
            checksums[ShardedVocabularyIndex.fileName(shard: p + 1, of: 4)] = Checksum.fnv64Hex(words: data)
        }
        func open(_ first: [Int]) throws -> MappedVocabularyShards {
            let index = try JSONEncoder().encode(ShardedVocabularyIndex(shards: 4, checksums: checksums, firstIDs: ["f": first]))
            return try ShardedVocabularyIndex.open(index, in: try DirectoryHandle(dir), path: dir + "/index", counts: ["f": 50])["f"]!
        }
        let shards = try open(Array(cuts.dropLast()))
        var read = FieldVocabulary(name: "f", count: 50, known: [:], sharesRowsWith: nil)
        read.attach(shards)
        XCTAssertEqual(read.values, whole.values)
        for i in 0..<50 {
            XCTAssertEqual(read.id(of: whole.key(at: i)), Int32(i + 1))
            XCTAssertEqual(read.key(at: i), whole.key(at: i))
            XCTAssertEqual(read.usage(at: i)?.occurrences, whole.usage(at: i)?.occurrences)
            XCTAssertEqual(read.usage(at: i)?.lastSeen, whole.usage(at: i)?.lastSeen)
        }
        for absent in ["-1", "1", "v3", "999999"] { XCTAssertEqual(read.id(of: CategoryKey.of(absent)), 0, absent) }
        XCTAssertThrowsError(try open([0, 0, 16, 17])) { XCTAssertTrue("\($0)".contains("starts at id 17"), "\($0)") }
        XCTAssertThrowsError(try open([0, 0, 17])) { XCTAssertTrue("\($0)".contains("no first ids per shard"), "\($0)") }
        // A hostile index — any byte changed, first ids anywhere — is refused or read, never a crash.
        let index = try JSONEncoder().encode(ShardedVocabularyIndex(shards: 4, checksums: checksums, firstIDs: ["f": Array(cuts.dropLast())]))
        var rng = RandomSource(seed: 11)
        for _ in 0..<300 {
            var mutated = index
            for _ in 0..<(1 + Int(rng.next() % 3)) { mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(32 + rng.next() % 95) }
            _ = try? ShardedVocabularyIndex.open(mutated, in: try DirectoryHandle(dir), path: "index", counts: ["f": 50])
            let first = (0..<4).map { _ in Int(rng.next() % 120) - 10 }
            XCTAssertThrowsError(try open(first.sorted() == Array(cuts.dropLast()) ? [-1, 0, 0, 0] : first))
        }
    }
}
