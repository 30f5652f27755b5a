import Foundation
import XCTest
@testable import Funnel

/// Shard files (`ShardedWeightsWriter`, `ShardedWeightsReader`) on three in-process ranks: a
/// row-sharded network saved as shards loads as the network gathered whole on rank 0, which is
/// the replicated network of the same seed; mutated shards and indexes are refused cleanly.
final class ShardedWeightsTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory("funnel-shards") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private static func schemaAndConfig() throws -> (FeatureSchema, ModelConfig) {
        let table = try DatasetLoader.loadForTraining(Fixtures.path("ali-ccp-aitm/train.csv"), options: ReadOptions(), minCount: 1)
        var c = ModelConfig(kind: .esmm)
        c.embeddingDim = 3
        c.hidden = [4]
        return (table.schema, c)
    }

    /// Rank 0 saves `sharded/` (shards) and `whole/` (gathered); returns the replicated network.
    private func saveBothLayouts() throws -> FunnelNetwork {
        let (schema, c) = try Self.schemaAndConfig()
        let dir = self.dir
        _ = try InProcessRanks.run(size: 3) { comm in
            let shard = TableShard(ownership: RowOwnership(rows: schema.embeddingRows, ranks: 3), rank: comm.rank, lookupRows: 64)
            let net = try FunnelNetwork(config: c, schema: schema, shard: shard)
            net.shareTables(over: comm)
            let writer = try XCTUnwrap(ShardedWeightsWriter(net))
            let model = TrainedModel(config: c, schema: schema, network: net, training: nil)
            if comm.isRoot { try model.save(to: dir + "/sharded", sharded: writer) } else { try writer.send() }
            if let whole = try net.gatheredReplica(schema: schema, moments: false) {
                try TrainedModel(config: c, schema: schema, network: whole, training: nil).save(to: dir + "/whole")
            }
        }
        return try FunnelNetwork(config: c, schema: schema)
    }

    func testShardFilesLoadAsTheWholeNetwork() throws {
        let replica = try saveBothLayouts()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/sharded").sorted()
        XCTAssertEqual(files.filter { $0.hasPrefix("weights") },
                       ["weights-00001-of-00003.safetensors", "weights-00002-of-00003.safetensors", "weights-00003-of-00003.safetensors",
                        "weights.index.json"])
        let (sharded, whole) = (try TrainedModel.load(from: dir + "/sharded"), try TrainedModel.load(from: dir + "/whole"))
        for (p, (q, r)) in zip(replica.parameters, zip(sharded.network.parameters, whole.network.parameters)) {
            XCTAssertEqual(q.value.array, p.value.array, "\(p.name): shards hold the replica's values (each rank drew the whole sequence)")
            XCTAssertEqual(r.value.array, p.value.array, "\(p.name): gathered whole")
        }
    }

    /// Mutated shard files and indexes, with checksums that match so the parsers are reached.
    func testMutatedShardsAreRefusedCleanly() throws {
        _ = try saveBothLayouts()
        let model = dir + "/sharded"
        let manifest = String(decoding: FileManager.default.contents(atPath: model + "/model.json")!, as: UTF8.self)
        let indexText = String(decoding: FileManager.default.contents(atPath: model + "/weights.index.json")!, as: UTF8.self)
        let shard = [UInt8](FileManager.default.contents(atPath: model + "/weights-00002-of-00003.safetensors")!)
        let n = try Mutator.run(stream: 7, corpus: [Array(indexText.utf8), shard]) { input, i in
            let fuzz = dir + "/f"
            try? FileManager.default.removeItem(atPath: fuzz)
            try FileManager.default.copyItem(atPath: model, toPath: fuzz)
            var index = Data(input)
            if i % 2 == 1 {
                try Data(input).write(to: URL(fileURLWithPath: fuzz + "/weights-00002-of-00003.safetensors"))
                let old = indexText.range(of: "\"weights-00002-of-00003.safetensors\" : \"")!
                var text = indexText
                text.replaceSubrange(old.upperBound..<text.index(old.upperBound, offsetBy: 16), with: Checksum.fnv64Hex(words: Data(input)))
                index = Data(text.utf8)
            }
            try index.write(to: URL(fileURLWithPath: fuzz + "/weights.index.json"))
            var m = manifest
            let old = m.range(of: "\"weights_checksum\" : \"")!
            m.replaceSubrange(old.upperBound..<m.index(old.upperBound, offsetBy: 16), with: Checksum.fnv64Hex(index))
            try Data(m.utf8).write(to: URL(fileURLWithPath: fuzz + "/model.json"))
            do { _ = try TrainedModel.load(from: fuzz) } catch is FunnelError {} catch is DataError {} catch {
                XCTFail("iteration \(i) (FUNNEL_FUZZ_SEED=\(Mutator.seed)): unexpected \(type(of: error)): \(error)")
            }
        }
        XCTAssertGreaterThan(n, 10)
    }
}
