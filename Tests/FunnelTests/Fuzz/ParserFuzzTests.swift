import Foundation
import XCTest
@testable import Funnel

/// Bounded fuzz runs: mutated inputs may be refused, never crash, hang or exhaust memory.
/// Every crash found becomes a regression case in `testRegressions`.
final class ParserFuzzTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory("funnel-fuzz") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Only Funnel's own errors are acceptable outcomes of a bad input.
    private func expectCleanFailure(_ what: String, seed: Int, _ body: () throws -> Void) {
        do { try body() } catch is DataError {} catch is FunnelError {} catch {
            XCTFail("\(what) iteration \(seed) (FUNNEL_FUZZ_SEED=\(Mutator.seed)): unexpected error \(type(of: error)): \(error)")
        }
    }

    private func fixtures() throws -> [[UInt8]] {
        let files = ["ali-ccp-torchrechub/ali_ccp_train_sample.csv", "aliexpress-fuxictr/train.csv", "ali-ccp-aitm/train.csv",
                     "ali-ccp-paddlerec-esmm/small.txt"]
        return try files.map { name in
            let text = try String(contentsOfFile: Fixtures.path(name), encoding: .utf8)
            // A few dozen lines keep each iteration fast; the mutations do the rest.
            return Array(text.split(separator: "\n", omittingEmptySubsequences: false).prefix(40).joined(separator: "\n").utf8)
        }
    }

    func testCSVReader() throws {
        let corpus = try fixtures()
        let path = dir + "/fuzz.csv"
        let n = Mutator.run(stream: 1, corpus: corpus) { input, i in
            FileManager.default.createFile(atPath: path, contents: Data(input))
            for skip in [false, true] {
                var o = ReadOptions()
                o.skipBadRows = skip
                o.inconsistent = .keep
                expectCleanFailure("csv", seed: i) { _ = try DatasetLoader.loadForTraining(path, options: o, minCount: 1) }
            }
        }
        XCTAssertGreaterThan(n, 10)
    }

    func testCacheReader() throws {
        let source = dir + "/source.csv"
        FileManager.default.createFile(atPath: source, contents: Data(try fixtures()[0]))
        let cache = dir + "/c.fcache"
        _ = try ColumnarCache.prepare(source: source, options: ReadOptions(), to: cache, groupRows: 8)
        let bytes = [UInt8](FileManager.default.contents(atPath: cache)!)
        let path = dir + "/fuzz.fcache"
        // Raw mutations mostly stop at the trailer or a checksum; mutations of one part with
        // every checksum made to match again reach the footer and group decoders behind them.
        var m = Mutator(stream: 5)
        var reachedGroups = 0
        let n = Mutator.run(stream: 2, corpus: [bytes]) { input, i in
            let fixed: [UInt8]
            switch i % 3 {
            case 0: fixed = input
            case 1: fixed = CacheSurgery.mutatingGroups(bytes, with: &m) ?? input
            default: fixed = CacheSurgery.mutatingFooter(bytes, with: &m) ?? input
            }
            FileManager.default.createFile(atPath: path, contents: Data(fixed))
            expectCleanFailure("cache", seed: i) {
                let c = try ColumnarCache(path: path)
                if i % 3 == 1 { reachedGroups += 1 }
                _ = try c.table(layout: c.layout, requireLabels: false, dayColumn: nil)
            }
        }
        XCTAssertGreaterThan(n, 10)
        XCTAssertGreaterThan(reachedGroups, n / 6, "group mutations with fixed checksums must pass the footer checks to reach the decoder")
    }

    /// Raw Ali-CCP: a mutated skeleton or common-features file is prepared (or refused) and the
    /// cache it leaves reads back; a mutated version 2 cache (shared records, bags) is refused cleanly.
    func testRawAliCCPReaderAndVersion2Cache() throws {
        var config = SimulatorConfig()
        config.rows = 200
        config.vocabScale = 0.01
        _ = try AliCCPRawSimulator(config: config).write(to: dir + "/sim")
        func head(_ name: String, _ lines: Int) throws -> [UInt8] {
            let text = try String(contentsOfFile: dir + "/sim/" + name, encoding: .utf8)
            return Array(text.split(separator: "\n", omittingEmptySubsequences: false).prefix(lines).joined(separator: "\n").utf8)
        }
        let skeleton = try head("sample_skeleton_train.csv", 30), common = try head("common_features_train.csv", 4)
        let (s, c, out) = (dir + "/s.csv", dir + "/c.csv", dir + "/raw.fcache")
        FileManager.default.createFile(atPath: s, contents: Data(skeleton))
        FileManager.default.createFile(atPath: c, contents: Data(common))
        var options = ReadOptions()
        options.skipBadRows = true
        _ = try AliCCPRawLayout.prepare(skeleton: s, common: c, options: options, to: out, groupRows: 7)
        let cacheBytes = [UInt8](FileManager.default.contents(atPath: out)!)
        var m = Mutator(stream: 9)
        let n = Mutator.run(stream: 8, corpus: [skeleton, common, cacheBytes]) { input, i in
            let which = m.below(3)
            FileManager.default.createFile(atPath: s, contents: Data(which == 0 ? input : skeleton))
            FileManager.default.createFile(atPath: c, contents: Data(which == 1 ? input : common))
            FileManager.default.createFile(atPath: dir + "/fuzz.fcache", contents: Data(which == 2 ? input : cacheBytes))
            expectCleanFailure("raw Ali-CCP", seed: i) {
                var o = ReadOptions()
                o.skipBadRows = i % 2 == 0
                _ = try AliCCPRawLayout.prepare(skeleton: s, common: c, options: o, to: out, groupRows: 7)
                _ = try TableSource.readTraining(out, options: ReadOptions())
            }
            expectCleanFailure("version 2 cache", seed: i) {
                let cache = try ColumnarCache(path: dir + "/fuzz.fcache")
                _ = try cache.table(layout: cache.layout, requireLabels: false, dayColumn: nil)
            }
        }
        XCTAssertGreaterThan(n, 10)
    }

    func testModelDirectoryLoader() throws {
        let table = try DatasetLoader.loadForTraining(Fixtures.path("ali-ccp-aitm/train.csv"), options: ReadOptions(), minCount: 1)
        var c = ModelConfig(kind: .esmm)
        c.embeddingDim = 2
        c.hidden = [3]
        let net = FunnelNetwork(config: c, embeddingRows: table.schema.embeddingRows, fields: table.schema.fields.count,
                                denseCount: table.schema.dense.count)
        let model = dir + "/m"
        try TrainedModel(config: c, schema: table.schema, network: net, training: nil).save(to: model)
        let manifest = [UInt8](FileManager.default.contents(atPath: model + "/model.json")!)
        let weights = [UInt8](FileManager.default.contents(atPath: model + "/weights.safetensors")!)
        let vocabularies = FileManager.default.contents(atPath: model + "/vocabularies.bin")!
        // Mutated weights and vocabularies (with a matching checksum, so their parsers are reached) and mutated manifests.
        let n = try Mutator.run(stream: 3, corpus: [weights, manifest, [UInt8](vocabularies)]) { input, i in
            let fuzz = dir + "/f"
            try? FileManager.default.removeItem(atPath: fuzz)
            try FileManager.default.createDirectory(atPath: fuzz, withIntermediateDirectories: true)
            if i % 3 == 2 {
                var m = String(decoding: manifest, as: UTF8.self)
                let old = m.range(of: "\"vocabulary_checksum\" : \"")!
                m.replaceSubrange(old.upperBound..<m.index(old.upperBound, offsetBy: 16), with: Checksum.fnv64Hex(words: Data(input)))
                FileManager.default.createFile(atPath: fuzz + "/model.json", contents: Data(m.utf8))
                FileManager.default.createFile(atPath: fuzz + "/weights.safetensors", contents: Data(weights))
                FileManager.default.createFile(atPath: fuzz + "/vocabularies.bin", contents: Data(input))
            } else if i % 2 == 0 {
                var m = String(decoding: manifest, as: UTF8.self)
                let old = m.range(of: "\"weights_checksum\" : \"")!
                let end = m[old.upperBound...].firstIndex(of: "\"")!
                m.replaceSubrange(old.upperBound..<end, with: Checksum.fnv64Hex(Data(input)))
                FileManager.default.createFile(atPath: fuzz + "/model.json", contents: Data(m.utf8))
                FileManager.default.createFile(atPath: fuzz + "/weights.safetensors", contents: Data(input))
            } else {
                FileManager.default.createFile(atPath: fuzz + "/model.json", contents: Data(input))
                FileManager.default.createFile(atPath: fuzz + "/weights.safetensors", contents: Data(weights))
            }
            FileManager.default.createFile(atPath: fuzz + "/vocabularies.bin", contents: i % 3 == 2 ? Data(input) : vocabularies)
            expectCleanFailure("model", seed: i) { _ = try TrainedModel.load(from: fuzz) }
        }
        XCTAssertGreaterThan(n, 10)
    }

    /// Inputs that once crashed a parser.
    /// Structure-aware safetensors headers: tensors with names drawn from three (so duplicates
    /// occur), shapes with negative, fractional, boolean and huge dimensions, offsets that
    /// overlap, leave gaps, run past the data or near 2⁶⁴. Every outcome is a clean refusal, or
    /// tensors that tile the data exactly under unique names.
    func testSafeTensorsHeaderStructure() {
        var m = Mutator(stream: 12)
        let dims = ["0", "1", "2", "3", "-1", "1.5", "true", "9007199254740993", "18446744073709551615", "4294967296"]
        let offsets = [0, 4, 8, 12, 16, 24, 32]
        let n = Mutator.repeatUntilDone(iterations: 20_000) { i in
            var entries: [String] = []
            for _ in 0..<(1 + m.below(4)) {
                let shape = (0..<m.below(3)).map { _ in dims[m.below(dims.count)] }.joined(separator: ",")
                let a = offsets[m.below(offsets.count)], b = m.below(5) == 0 ? "18446744073709551612" : "\(a + 4 * m.below(4))"
                entries.append("\"t\(m.below(3))\":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(a),\(b)]}")
            }
            var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
            while (8 + header.count) % 8 != 0 { header.append(32) }
            var bytes = [UInt8](repeating: 0, count: 8)
            for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: UInt64(header.count) >> (8 * UInt64(k))) }
            let body = 4 * m.below(9)
            let input = Data(bytes + header + [UInt8](repeating: 0, count: body))
            expectCleanFailure("safetensors", seed: i) {
                let (tensors, _) = try SafeTensors.decode(input, path: "fuzz.safetensors")
                XCTAssertEqual(tensors.values.reduce(0) { $0 + $1.values.count * 4 }, body, "iteration \(i): tensors do not tile the data")
                XCTAssertEqual(tensors.count, entries.count, "iteration \(i): a duplicate name was accepted")
            }
        }
        XCTAssertGreaterThan(n, 10)
    }

    func testRegressions() {
        // A tensor shape whose element count overflows Int (trapped in the shape product).
        let header = #"{"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#
        var bytes = Data()
        var n = UInt64(header.utf8.count)
        withUnsafeBytes(of: &n) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8) + [0, 0, 0, 0])
        XCTAssertThrowsError(try SafeTensors.decode(bytes, path: "x")) { XCTAssertTrue("\($0)".contains("does not fit"), "\($0)") }
        // A cache trailer with a plausible footer offset and a footer length near Int.max (their sum trapped).
        var cache = Array("FUNNELC".utf8) + [2] + [UInt8](repeating: 0, count: 16)
        cache += [8, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8) + [UInt8](repeating: 0, count: 8) + Array("FUNNELCE".utf8)
        let path = dir + "/trailer.fcache"
        FileManager.default.createFile(atPath: path, contents: Data(cache))
        XCTAssertThrowsError(try ColumnarCache(path: path)) { XCTAssertTrue("\($0)".contains("trailer is damaged"), "\($0)") }
    }
}

/// Rewrites a cache after mutating one part, with every checksum recomputed, so a fuzz input
/// gets past the integrity checks to the decoders behind them.
enum CacheSurgery {
    /// (footer bytes, footer offset) of a well-formed cache.
    static func footer(_ b: [UInt8]) -> (ColumnarCache.Footer, Int)? {
        guard b.count >= 40 else { return nil }
        func u64(_ at: Int) -> Int { Int(b[at..<(at + 8)].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }) }
        let offset = u64(b.count - 32), length = u64(b.count - 24)
        guard offset >= 8, offset + length == b.count - 32,
              let f = try? JSONDecoder().decode(ColumnarCache.Footer.self, from: Data(b[offset..<(offset + length)])) else { return nil }
        return (f, offset)
    }

    /// `body` + a footer re-encoded with `footer` + a trailer that matches it.
    static func assemble(_ body: [UInt8], footer: [UInt8]) -> [UInt8] {
        var out = body + footer
        for v in [UInt64(body.count), UInt64(footer.count), Checksum.fnv64Words(Data(footer))] {
            withUnsafeBytes(of: v.littleEndian) { out += $0 }
        }
        return out + ColumnarCache.trailerMagic
    }

    /// Mutates bytes inside the row groups, then recomputes every group's checksum.
    static func mutatingGroups(_ b: [UInt8], with m: inout Mutator) -> [UInt8]? {
        guard let found = footer(b), !found.0.groups.isEmpty else { return nil }
        var f = found.0
        let offset = found.1
        var body = Array(b[0..<offset])
        for _ in 0..<(1 + m.below(6)) {
            let g = f.groups[m.below(f.groups.count)]
            let size = ColumnarCache.groupBytes(rows: g.rows, values: g.values ?? [], footer: f)
            guard size > 0, g.offset + size <= body.count else { continue }
            body[g.offset + m.below(size)] = UInt8(truncatingIfNeeded: m.below(256))
        }
        for k in f.groups.indices {
            let g = f.groups[k]
            let size = ColumnarCache.groupBytes(rows: g.rows, values: g.values ?? [], footer: f)
            guard g.offset + size <= body.count else { continue }
            f.groups[k].checksum = body[g.offset..<(g.offset + size)].withUnsafeBytes { Checksum.fnv64Hex(words: $0) }
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(f)).map { assemble(body, footer: Array($0)) }
    }

    /// Mutates the footer's JSON text, then makes the trailer's length and checksum match it.
    static func mutatingFooter(_ b: [UInt8], with m: inout Mutator) -> [UInt8]? {
        guard let (_, offset) = footer(b) else { return nil }
        let text = Array(b[offset..<(b.count - 32)])
        return assemble(Array(b[0..<offset]), footer: m.mutate(text))
    }
}
