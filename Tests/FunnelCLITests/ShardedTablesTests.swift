import Foundation
import XCTest

/// Row-sharded embedding tables (`--embedding-sharding row`) under `mpirun -np 2` and `-np 3`
/// against the replicated run they replace: the same global batches, seed and data give the same
/// model (summation order is the only freedom, and the owners sum in the all-gather's order), on
/// a single-valued table, under a mixture trunk, and on pooled multi-valued lists streamed from a
/// raw Ali-CCP cache under a memory budget.
final class ShardedTablesTests: XCTestCase {
    static var dir = ""

    override class func setUp() {
        dir = CLI.temporaryDirectory("sharded")
        for args in [["simulate", "--rows", "12000", "--seed", "3", "--vocab-scale", "0.05", "--out", dir + "/csv"],
                     ["simulate", "--layout", "ali-ccp-raw", "--rows", "5000", "--seed", "4", "--vocab-scale", "0.05",
                      "--impressions-per-request", "12", "--out", dir + "/raw"],
                     ["prepare", "--layout", "ali-ccp", "--data", dir + "/raw/sample_skeleton_train.csv", "--common",
                      dir + "/raw/common_features_train.csv", "--out", dir + "/raw.fcache", "--group-rows", "700"]] {
            let r = try! CLI.run(args)
            precondition(r.status == 0, r.stderr)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func auc(_ model: String, _ data: String) throws -> [String: Double] {
        let o = CLI.json(try CLI.ok(["eval", "--model", model, "--data", data, "--json"]))
        var out: [String: Double] = [:]
        for k in ["ctr", "cvr", "ctcvr"] { out[k] = try XCTUnwrap(CLI.auc(o, "auc_" + k), "\(model): auc_\(k)") }
        return out
    }

    func testRowShardedTablesTrainTheReplicatedModel() throws {
        let d = Self.dir
        let csv = ["--train", d + "/csv/train.csv", "--embedding-dim", "8", "--hidden", "32,16", "--batch-size", "500", "--epochs", "2"]
        let raw = ["--train", d + "/raw.fcache", "--pooling", "mean", "--embedding-dim", "4", "--hidden", "16,8", "--batch-size", "300",
                   "--memory-budget", "300", "--shuffle-buffer-rows", "1500"]
        let cases: [(name: String, args: [String], test: String)] = [
            ("esmm", ["--model", "esmm"] + csv, d + "/csv/test.csv"),
            ("mmoe", ["--model", "mmoe", "--experts", "2", "--expert-hidden", "8"] + csv, d + "/csv/test.csv"),
            ("pooled", ["--model", "esmm"] + raw, d + "/raw.fcache"),
        ]
        for (name, args, test) in cases {
            for ranks in [2, 3] {
                let base = ["train", "--threads", "2", "--seed", "5", "--json"] + args
                let replicated = try CLI.mpirun(ranks: ranks, base + ["--embedding-sharding", "replicated", "--out", d + "/\(name)-\(ranks)-rep"])
                XCTAssertEqual(replicated.status, 0, replicated.stderr)
                // auto with a zero threshold shards every table, as row does.
                let mode = ranks == 2 ? ["--embedding-sharding", "row"] : ["--shard-threshold-mb", "0"]
                let row = try CLI.mpirun(ranks: ranks, base + mode + ["--out", d + "/\(name)-\(ranks)-row"])
                XCTAssertEqual(row.status, 0, row.stderr)
                let (r, s) = (CLI.json(replicated.stdout)["sharding"] as? [String: Any], CLI.json(row.stdout)["sharding"] as? [String: Any])
                XCTAssertEqual(r?["tables_sharded"] as? [String], [], "\(name): \(replicated.stdout)")
                XCTAssertEqual(s?["tables_sharded"] as? [String], ["embedding"], "\(name): \(row.stdout)")
                let (whole, shares) = ((r?["embedding_bytes_per_rank"] as? [Int]) ?? [], (s?["embedding_bytes_per_rank"] as? [Int]) ?? [])
                XCTAssertEqual(shares.count, ranks)
                XCTAssertEqual(shares.reduce(0, +), s?["embedding_bytes_total"] as? Int)
                // (Tables this small are smaller than a step's lookup table: a share is the rows owned plus that.)
                XCTAssertTrue(whole.count == ranks && whole.allSatisfy { $0 == whole[0] }, "\(name): a replica on every rank: \(whole)")
                XCTAssertGreaterThan(s?["alltoall_bytes_per_step"] as? Double ?? 0, 0)
                let (a, b) = (d + "/\(name)-\(ranks)-rep", d + "/\(name)-\(ranks)-row")
                let diff = try CLI.maxWeightDifference(a, b)
                XCTAssertLessThanOrEqual(diff, 1e-4, "\(name), \(ranks) ranks: weights differ by \(diff)")
                let (x, y) = (try auc(a, test), try auc(b, test))
                for k in ["ctr", "cvr", "ctcvr"] { XCTAssertEqual(x[k]!, y[k]!, accuracy: 1e-3, "\(name) \(k)") }
            }
        }
    }
}
