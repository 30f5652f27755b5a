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
                // The vocabularies were split by key range while training (no rank held them whole)
                // and joined on rank 0: the replicated run's file byte for byte.
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a + "/vocabularies.bin")),
                               try Data(contentsOf: URL(fileURLWithPath: b + "/vocabularies.bin")), "\(name), \(ranks) ranks")
                XCTAssertEqual(r?["vocabulary"] as? String, "whole")
                XCTAssertEqual(s?["vocabulary"] as? String, "split")
                let (every, held) = ((r?["vocabulary_values_per_rank"] as? [Int]) ?? [], (s?["vocabulary_values_per_rank"] as? [Int]) ?? [])
                XCTAssertEqual(held.count, ranks)
                XCTAssertEqual(held.reduce(0, +), every.first, "\(name): the slices hold every value once")
                XCTAssertTrue(held.allSatisfy { $0 <= (every.first ?? 0) / ranks + 64 }, "\(name): equal shares per field: \(held)")
                if name == "esmm" {
                    // The dense all-reduce overlapping the exchanges or not: the same bytes.
                    let serial = try CLI.mpirun(ranks: ranks, base + mode + ["--no-overlap-collectives", "--out", b + "-serial"])
                    XCTAssertEqual(serial.status, 0, serial.stderr)
                    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: b + "/weights.safetensors")),
                                   try Data(contentsOf: URL(fileURLWithPath: b + "-serial/weights.safetensors")))
                }
                let (x, y) = (try auc(a, test), try auc(b, test))
                for k in ["ctr", "cvr", "ctcvr"] { XCTAssertEqual(x[k]!, y[k]!, accuracy: 1e-3, "\(name) \(k)") }
            }
        }
    }

    /// A per-rank budget below one replica but above a third of it: the replicated job refuses
    /// before allocating, naming the ranks that would fit; `-np 3` row-sharded trains within it
    /// and, unable to gather the tables on rank 0, writes shard files — which predict, eval,
    /// export and --init-from read as the whole model the replicated job saves.
    func testMemoryDividesAndShardFilesHoldTheModel() throws {
        let d = Self.dir
        try CLI.ok(["prepare", "--data", d + "/csv/train.csv", "--out", d + "/train.fcache"])
        // 2M hashed rows × 16 dimensions: a replica with Adam's state is 367 MiB.
        let args = ["train", "--train", d + "/train.fcache", "--model", "esmm", "--embedding-dim", "16", "--hidden", "32,16",
                    "--batch-size", "500", "--threads", "1", "--epochs", "1", "--hash-buckets", "101=2000000", "--json"]
        let refused = try CLI.mpirun(ranks: 3, args + ["--memory-budget", "300", "--embedding-sharding", "replicated", "--out", d + "/big-rep"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("need 367 MiB per rank") && refused.stderr.contains("--memory-budget is 300 MiB")
                      && refused.stderr.contains("fit on 2 ranks"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/big-rep"))
        let r = try CLI.mpirun(ranks: 3, args + ["--memory-budget", "300", "--out", d + "/big-row"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let sharding = try XCTUnwrap(CLI.json(r.stdout)["sharding"] as? [String: Any], r.stdout)
        XCTAssertEqual(sharding["weights_layout"] as? String, "sharded")
        let peaks = (sharding["peak_rss_mb_per_rank"] as? [Double]) ?? []
        XCTAssertEqual(peaks.count, 3)
        XCTAssertTrue(peaks.allSatisfy { $0 < 300 }, "every rank within its budget: \(peaks)")
        let files = try FileManager.default.contentsOfDirectory(atPath: d + "/big-row").sorted()
        XCTAssertEqual(files, ["model.json", "vocabularies-00001-of-00003.bin", "vocabularies-00002-of-00003.bin",
                               "vocabularies-00003-of-00003.bin", "vocabularies.index.json", "weights-00001-of-00003.safetensors",
                               "weights-00002-of-00003.safetensors", "weights-00003-of-00003.safetensors", "weights.index.json"])
        // The replicated job with room for it: the same model, read back from either layout.
        let whole = try CLI.mpirun(ranks: 3, args + ["--embedding-sharding", "replicated", "--memory-budget", "1500", "--out", d + "/big-whole"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        for dir in ["big-row", "big-whole"] {
            try CLI.ok(["predict", "--model", d + "/" + dir, "--data", d + "/csv/test.csv", "--out", d + "/\(dir).csv"])
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/big-row.csv")), try Data(contentsOf: URL(fileURLWithPath: d + "/big-whole.csv")),
                       "the shard files hold the replicated job's model")
    }

    /// Shard files (`--weights-layout sharded`) read by every reader of a model directory as the
    /// whole model: predict (the same bytes as the whole layout's), export, --init-from; a
    /// missing or damaged shard is refused naming the file.
    func testEveryReaderReadsShardFiles() throws {
        let d = Self.dir
        let args = ["train", "--train", d + "/csv/train.csv", "--model", "esmm", "--embedding-dim", "8", "--hidden", "16", "--threads", "1",
                    "--embedding-sharding", "row"]
        for layout in ["sharded", "whole"] {
            let r = try CLI.mpirun(ranks: 3, args + ["--weights-layout", layout, "--out", d + "/small-\(layout)"])
            XCTAssertEqual(r.status, 0, r.stderr)
            try CLI.ok(["predict", "--model", d + "/small-\(layout)", "--data", d + "/csv/test.csv", "--out", d + "/small-\(layout).csv"])
            try CLI.ok(["export", "--model", d + "/small-\(layout)", "--out", d + "/small-\(layout).onnx"])
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: d + "/small-sharded/weights.index.json"))
        // The split vocabularies stayed split to the end: shard files, no whole vocabulary file.
        let files = try FileManager.default.contentsOfDirectory(atPath: d + "/small-sharded").sorted()
        XCTAssertEqual(files.filter { $0.hasPrefix("vocabularies") },
                       ["vocabularies-00001-of-00003.bin", "vocabularies-00002-of-00003.bin", "vocabularies-00003-of-00003.bin",
                        "vocabularies.index.json"])
        XCTAssertEqual(CLI.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: d + "/small-sharded/model.json")), as: UTF8.self))
                           .keys.contains("vocabulary_file"), true)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/small-sharded.csv")),
                       try Data(contentsOf: URL(fileURLWithPath: d + "/small-whole.csv")))
        // Under mpirun, predict and eval hold each rank's rows of the tables and share the data
        // rows: the same file and the same metrics as one process.
        for ranks in [2, 3] {
            let p = try CLI.mpirun(ranks: ranks, ["predict", "--model", d + "/small-sharded", "--data", d + "/csv/test.csv",
                                                  "--out", d + "/small-\(ranks)-ranks.csv", "--threads", "1"])
            XCTAssertEqual(p.status, 0, p.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/small-\(ranks)-ranks.csv")),
                           try Data(contentsOf: URL(fileURLWithPath: d + "/small-whole.csv")), "\(ranks) ranks predict one process's rows")
            let eval = ["eval", "--model", d + "/small-sharded", "--data", d + "/csv/test.csv", "--json", "--truth", d + "/csv/test_truth.csv",
                        "--group-column", "101", "--downsample-negatives", "2"]
            let e = try CLI.mpirun(ranks: ranks, eval)
            XCTAssertEqual(e.status, 0, e.stderr)
            let one = CLI.json(try CLI.ok(eval))
            let many = CLI.json(e.stdout)
            for key in ["auc_ctr", "auc_cvr", "auc_ctcvr", "auc_cvr_entire_space", "gauc_ctr", "logloss_ctcvr", "rows"] {
                XCTAssertEqual(many[key] as? NSObject, one[key] as? NSObject, "\(ranks) ranks: \(key)")
            }
        }
        let next = CLI.json(try CLI.ok(["train", "--train", d + "/csv/test.csv", "--init-from", d + "/small-sharded", "--out", d + "/small-next", "--json"]))
        XCTAssertEqual(next["model"] as? String, "esmm")
        for (damage, file, saying) in [("missing", "weights-00002-of-00003.safetensors", "weights-00002-of-00003.safetensors: missing"),
                                       ("damaged", "weights-00003-of-00003.safetensors", "weights-00003-of-00003.safetensors: checksum"),
                                       ("vocabulary-missing", "vocabularies-00003-of-00003.bin", "vocabularies-00003-of-00003.bin: missing"),
                                       ("vocabulary-damaged", "vocabularies-00002-of-00003.bin", "vocabularies-00002-of-00003.bin: checksum"),
                                       ("index-damaged", "vocabularies.index.json", "vocabularies.index.json: checksum")] {
            let copy = d + "/small-\(damage)"
            try FileManager.default.copyItem(atPath: d + "/small-sharded", toPath: copy)
            if damage.hasSuffix("missing") {
                try FileManager.default.removeItem(atPath: copy + "/" + file)
            } else {
                let h = try FileHandle(forWritingTo: URL(fileURLWithPath: copy + "/" + file))
                try h.seek(toOffset: file.hasSuffix(".json") ? 30 : 200)
                h.write(Data([49, 50, 51, 52]))
                try h.close()
            }
            try CLI.fails(["eval", "--model", copy, "--data", d + "/csv/test.csv"], saying: saying, status: 1)
        }
    }

    /// What sharding refuses in words: `row` without mpirun, shard files of replicated tables,
    /// and ranks that disagree on how to shard.
    func testShardingRefusals() throws {
        let d = Self.dir
        let args = ["train", "--train", d + "/csv/train.csv", "--model", "esmm", "--embedding-dim", "4", "--hidden", "8", "--threads", "1"]
        try CLI.fails(args + ["--out", d + "/r1", "--embedding-sharding", "row"], saying: "--embedding-sharding row shares tables between the ranks", status: 1)
        let layout = try CLI.mpirun(ranks: 2, args + ["--out", d + "/r2", "--weights-layout", "sharded"])
        XCTAssertNotEqual(layout.status, 0)
        XCTAssertTrue(layout.stderr.contains("this job's tables are replicated"), layout.stderr)
        let mixed = try CLI.mpirun(ranks: 1, args + ["--out", d + "/r3", "--embedding-sharding", "row"],
                                   extra: [":", "-np", "1", CLI.binary.path] + args + ["--out", d + "/r3", "--embedding-sharding", "replicated"])
        XCTAssertNotEqual(mixed.status, 0)
        XCTAssertTrue(mixed.stderr.contains("disagrees with rank 0 on the embedding sharding"), mixed.stderr)
        // A rank that fails (a bad row in its share) ends the sharded job naming itself; no model is left.
        let bad = d + "/bad.csv"
        var lines = try String(contentsOfFile: d + "/csv/train.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        lines[2] = "2" + lines[2].drop { $0 != "," }
        try (lines.joined(separator: "\n") + "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let failed = try CLI.mpirun(ranks: 2, ["train", "--train", bad] + args.dropFirst(3) + ["--out", d + "/r4", "--embedding-sharding", "row"])
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.stderr.contains("rank 1 of 2") && failed.stderr.contains("bad.csv:3"), failed.stderr)
        for out in ["r1", "r2", "r3", "r4"] { XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/" + out)) }
    }
}
