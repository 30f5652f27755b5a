import Foundation
import XCTest
@testable import Funnel

/// `vocabularies.bin`: the vocabularies a model directory maps instead of parsing.
final class VocabularyFileTests: XCTestCase {
    /// Integer ids, text values (including ones that look like integers but are not written as
    /// their key, and non-ASCII), an empty vocabulary, a hashed field and a shared group.
    static func schema() -> FeatureSchema {
        let layout = TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: ["user", "city", "empty", "h", "seen", "item"],
                                 dense: [], ignored: [], multiValued: ["seen"])
        return FeatureSchema(layout: layout, minCount: 1, fields: [
            FieldVocabulary(name: "user", values: (1...5000).map { String($0 * 7919) }),
            FieldVocabulary(name: "city", values: ["007", "+3", "-0", "Zürich", "東京", "New York, NY", "12"]),
            FieldVocabulary(name: "empty", values: []),
            FieldVocabulary(name: "h", values: [], hashBuckets: 64),
            FieldVocabulary(name: "seen", values: ["5", "9", "11"], sharesRowsWith: "item"),
            FieldVocabulary(name: "item", values: ["5", "9", "11"]),
        ], dense: [])
    }

    static func save(_ schema: FeatureSchema, to dir: String) throws -> TrainedModel {
        var c = ModelConfig(kind: .esmm)
        c.embeddingDim = 2
        c.hidden = [3]
        let model = TrainedModel(config: c, schema: schema, network: try FunnelNetwork(config: c, schema: schema), training: nil)
        try model.save(to: dir)
        return model
    }

    func testMappedVocabulariesAnswerAsTheFittedOnes() throws {
        let dir = makeTempDirectory("vocab-file") + "/m"
        let schema = Self.schema()
        _ = try Self.save(schema, to: dir)
        let manifest = try String(contentsOfFile: dir + "/model.json", encoding: .utf8)
        XCTAssertFalse(manifest.contains("Zürich"), "values live in vocabularies.bin, not model.json")
        XCTAssertTrue(manifest.contains("\"vocabulary_file\" : \"vocabularies.bin\""))
        let loaded = try TrainedModel.load(from: dir).schema
        XCTAssertEqual(loaded.embeddingRows, schema.embeddingRows)
        XCTAssertEqual(loaded.fieldOffsets, schema.fieldOffsets)
        for (a, b) in zip(schema.fields, loaded.fields) {
            XCTAssertEqual(b.values, a.values, a.name)
            XCTAssertEqual(b.count, a.count, a.name)
            XCTAssertEqual(b.hashBuckets, a.hashBuckets)
            XCTAssertEqual(b.sharesRowsWith, a.sharesRowsWith)
            for v in a.values + ["unseen", "7", "0", "", "3"] {
                XCTAssertEqual(b.id(of: CategoryKey.of(v)), a.id(of: CategoryKey.of(v)), "\(a.name): '\(v)'")
            }
        }
        XCTAssertEqual(loaded.fields[0].id(of: 7919 * 4321), 4321)
        XCTAssertTrue(loaded.fields[0].isCanonicalIntegers)
        XCTAssertFalse(loaded.fields[1].isCanonicalIntegers, "\"007\" is not the decimal form of its key")
        // Saving a loaded (mapped) model writes the same bytes again.
        try TrainedModel.load(from: dir).save(to: dir + "2")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/vocabularies.bin"),
                       FileManager.default.contents(atPath: dir + "2/vocabularies.bin"))
    }

    /// A model.json that lists its values (every model saved before vocabularies.bin) loads as before.
    func testModelsThatListTheirValuesInModelJSONStillLoad() throws {
        let dir = makeTempDirectory("vocab-legacy") + "/m"
        _ = try Self.save(Self.schema(), to: dir)
        var m = try TrainedModel.manifest(in: dir)
        m.schema = Self.schema()
        (m.vocabularyFile, m.vocabularyChecksum) = (nil, nil)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(m).write(to: URL(fileURLWithPath: dir + "/model.json"))
        try FileManager.default.removeItem(atPath: dir + "/vocabularies.bin")
        let loaded = try TrainedModel.load(from: dir)
        XCTAssertEqual(loaded.schema.fields.map(\.values), Self.schema().fields.map(\.values))
    }

    /// A damaged, missing, foreign or forged vocabulary file is refused in words.
    func testDamagedAndForgedVocabularyFilesAreRefused() throws {
        let dir = makeTempDirectory("vocab-bad") + "/m"
        _ = try Self.save(Self.schema(), to: dir)
        let path = dir + "/vocabularies.bin", good = FileManager.default.contents(atPath: path)!
        func refuses(_ bytes: Data, patchChecksum: Bool, _ expected: String, line: UInt = #line) throws {
            try bytes.write(to: URL(fileURLWithPath: path))
            if patchChecksum {
                var m = try TrainedModel.manifest(in: dir)
                m.vocabularyChecksum = Checksum.fnv64Hex(words: bytes)
                var text = try String(contentsOfFile: dir + "/model.json", encoding: .utf8)
                let r = text.range(of: "\"vocabulary_checksum\" : \"")!
                text.replaceSubrange(r.upperBound..<text.index(r.upperBound, offsetBy: 16), with: m.vocabularyChecksum!)
                try text.write(toFile: dir + "/model.json", atomically: true, encoding: .utf8)
            }
            XCTAssertThrowsError(try TrainedModel.load(from: dir), line: line) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)", line: line)
            }
        }
        var flipped = good
        flipped[flipped.count - 100] ^= 1
        try refuses(flipped, patchChecksum: false, "the vocabularies are damaged")
        try refuses(good.prefix(good.count / 2), patchChecksum: false, "checksum")
        let headerLength = Int(good.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = String(decoding: good[8..<(8 + headerLength)], as: UTF8.self)
        header = header.replacingOccurrences(of: "\"count\":5000", with: "\"count\":9000")
        try refuses(good.prefix(8) + Data(header.utf8) + good.dropFirst(8 + headerLength), patchChecksum: true, "cannot hold")
        var huge = good
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        try refuses(huge, patchChecksum: true, "header length")
        let foreign = withUnsafeBytes(of: UInt64(5).littleEndian) { Data($0) } + Data("hello, not a vocabulary file".utf8)
        try refuses(foreign, patchChecksum: true, "not a Funnel vocabulary file")
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try TrainedModel.load(from: dir)) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
    }
}
