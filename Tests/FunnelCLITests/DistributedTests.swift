import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `mpirun -np 2 funnel train` against one process: the same model up to summation order, rank
/// 0 alone writing it; and the failures a job must survive cleanly.
final class DistributedTests: XCTestCase {
    static var dir = ""

    override class func setUp() {
        dir = CLI.temporaryDirectory("mpi")
        let r = try! CLI.run(["simulate", "--rows", "12000", "--seed", "3", "--vocab-scale", "0.05", "--out", dir + "/data"])
        precondition(r.status == 0, r.stderr)
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func maxWeightDifference(_ a: String, _ b: String) throws -> Float { try CLI.maxWeightDifference(a, b) }

    private func auc(_ model: String) throws -> [String: Double] {
        let o = CLI.json(try CLI.ok(["eval", "--model", model, "--data", Self.dir + "/data/test.csv", "--json"]))
        var out: [String: Double] = [:]
        for k in ["ctr", "cvr", "ctcvr"] { out[k] = try XCTUnwrap(CLI.auc(o, "auc_" + k), "\(model): auc_\(k)") }
        return out
    }

    func testTwoRanksTrainTheModelOneProcessTrains() throws {
        let d = Self.dir, train = d + "/data/train.csv"
        let common = ["--embedding-dim", "8", "--hidden", "32,16", "--batch-size", "500", "--threads", "1", "--seed", "5", "--epochs", "2"]
        // Each rank reads its shard of the file; sample spaces, sampling and shuffles run on the
        // shared label view, so BASE's two stages, UNBIAS's weights and downsampling match too.
        for (model, extra) in [("esmm", [String]()), ("mmoe", ["--experts", "2", "--expert-hidden", "8"]), ("base", []),
                               ("unbias", ["--downsample-negatives", "2"]), ("dcmt", ["--arch", "dcn", "--cross-layers", "2"])] {
            try CLI.ok(["train", "--train", train, "--model", model, "--out", d + "/\(model)-1"] + common + extra)
            let r = try CLI.mpirun(ranks: 2, ["train", "--train", train, "--model", model, "--out", d + "/\(model)-2", "--json"] + common + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = CLI.json(r.stdout)
            let comm = o["distributed"] as? [String: Any]
            XCTAssertEqual(comm?["ranks"] as? Int, 2, "one JSON object, from rank 0: \(r.stdout)")
            XCTAssertGreaterThan(comm?["dense_bytes_per_step"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(comm?["sparse_bytes_per_step"] as? Double ?? 0, 0)
            let diff = try maxWeightDifference(d + "/\(model)-1", d + "/\(model)-2")
            XCTAssertLessThan(diff, 1e-4, "\(model): weights after two epochs differ by \(diff)")
            let (a1, a2) = (try auc(d + "/\(model)-1"), try auc(d + "/\(model)-2"))
            for k in ["ctr", "cvr", "ctcvr"] { XCTAssertEqual(a1[k]!, a2[k]!, accuracy: 1e-3, "\(model) \(k)") }
        }
        // Deterministic for a fixed rank count, thread count and seed: the same bytes again.
        let again = try CLI.mpirun(ranks: 2, ["train", "--train", train, "--model", "esmm", "--out", d + "/esmm-2b"] + common)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/esmm-2/weights.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: d + "/esmm-2b/weights.safetensors")))
        // Streaming a cache under a memory budget, sharded: each rank reads its rows of every row
        // group; buffers of 3,000 rows over groups of 1,000 (the same buffers for any rank count).
        try CLI.ok(["prepare", "--data", train, "--out", d + "/train.fcache", "--group-rows", "1000"])
        let budget = ["--memory-budget", "300", "--shuffle-buffer-rows", "3000"] + common
        try CLI.ok(["train", "--train", d + "/train.fcache", "--model", "esmm", "--out", d + "/s1"] + budget)
        let s = try CLI.mpirun(ranks: 2, ["train", "--train", d + "/train.fcache", "--model", "esmm", "--out", d + "/s2"] + budget)
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertLessThan(try maxWeightDifference(d + "/s1", d + "/s2"), 1e-4)
    }

    /// Continuing a model on the next day's file (`--init-from`, no `--model`: the saved one's;
    /// vocabularies grow; Adam's state carried) under `mpirun -np 2`, in memory and streaming a
    /// cache, is the model one process continues to.
    func testTwoRanksContinueAModelAsOneProcessDoes() throws {
        let d = Self.dir, common = ["--batch-size", "500", "--threads", "1"]
        try CLI.ok(["train", "--train", d + "/data/train.csv", "--model", "esmm", "--embedding-dim", "8", "--hidden", "32,16",
                    "--out", d + "/day1", "--save-optimizer-state"] + common)
        try CLI.ok(["prepare", "--data", d + "/data/test.csv", "--out", d + "/day2.fcache", "--group-rows", "500"])
        for (tag, source, extra) in [("csv", d + "/data/test.csv", [String]()), ("cache-in-memory", d + "/day2.fcache", []),
                                     ("cache", d + "/day2.fcache", ["--memory-budget", "300", "--shuffle-buffer-rows", "1200"])] {
            let args = ["train", "--train", source, "--init-from", d + "/day1", "--lr", "0.002", "--json"] + common + extra
            let one = CLI.json(try CLI.ok(args + ["--out", d + "/day2-\(tag)-1"]))
            let continued = try XCTUnwrap(one["continued"] as? [String: Any], "\(tag): \(one)")
            XCTAssertEqual(continued["optimizer_state"] as? Bool, true)
            XCTAssertGreaterThan(continued["added_rows"] as? Int ?? 0, 0, "\(tag): the next day brings new ids")
            XCTAssertEqual(one["model"] as? String, "esmm")
            let r = try CLI.mpirun(ranks: 2, args + ["--out", d + "/day2-\(tag)-2"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let diff = try maxWeightDifference(d + "/day2-\(tag)-1", d + "/day2-\(tag)-2")
            XCTAssertLessThan(diff, 1e-4, "\(tag): continued weights differ by \(diff)")
        }
    }

    /// A raw Ali-CCP cache's requests under `mpirun -np 2`: the label view carries each row's
    /// request, so the ranks batch whole requests as one process does and share each request's
    /// part — the weights equal one process's, in memory and streamed.
    func testTwoRanksShareRequestsAsOneProcessDoes() throws {
        let d = CLI.temporaryDirectory("mpi-requests")
        defer { try? FileManager.default.removeItem(atPath: d) }
        try CLI.ok(["simulate", "--layout", "ali-ccp-raw", "--rows", "5000", "--seed", "4", "--vocab-scale", "0.05",
                    "--impressions-per-request", "12", "--out", d])
        try CLI.ok(["prepare", "--layout", "ali-ccp", "--data", d + "/sample_skeleton_train.csv", "--common", d + "/common_features_train.csv",
                    "--out", d + "/train.fcache", "--group-rows", "700"])
        let common = ["train", "--train", d + "/train.fcache", "--model", "esmm", "--pooling", "mean", "--embedding-dim", "4",
                      "--hidden", "16,8", "--batch-size", "300", "--threads", "1", "--json"]
        for (tag, extra) in [("memory", [String]()), ("streamed", ["--memory-budget", "300", "--shuffle-buffer-rows", "1500"])] {
            let one = CLI.json(try CLI.ok(common + extra + ["--out", d + "/one-\(tag)"]))
            XCTAssertEqual((one["request_sharing"] as? [String: Any])?["enabled"] as? Bool, true, "\(tag): \(one)")
            let r = try CLI.mpirun(ranks: 2, common + extra + ["--out", d + "/two-\(tag)"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let diff = try maxWeightDifference(d + "/one-\(tag)", d + "/two-\(tag)")
            XCTAssertLessThan(diff, 1e-4, "\(tag): weights differ by \(diff)")
        }
    }

    /// `mpirun -np 2 funnel gbdt train`: each rank reads a contiguous run of the rows; the feature
    /// statistics are aggregated over the ranks, so the pipeline and both feature matrices are one
    /// machine's (checked by their positional checksums); bins come from one machine's sample;
    /// bagging draws one machine's bags. The file is sorted by day, so one rank holds every
    /// validation row and the ranks' training rows are rebalanced.
    func testLightGBMOverTheSameCommunicator() throws {
        let d = Self.dir
        try CLI.ok(["simulate", "--layout", "recsys2023", "--rows", "20000", "--seed", "3", "--out", d + "/rs"])
        let config = d + "/g.yaml"
        try """
            num_iterations: 30
            features:
              target_encoding: {statistics: [mean]}
              group_statistics: [{by: f_2, of: f_42, statistics: [mean, variance, median]}]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let args = ["gbdt", "train", "--train", d + "/rs/train.tsv", "--config", config, "--threads", "1"]
        try CLI.ok(args + ["--out", d + "/g1"])
        let r = try CLI.mpirun(ranks: 2, args + ["--out", d + "/g2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/g1/features.json")),
                       try Data(contentsOf: URL(fileURLWithPath: d + "/g2/features.json")), "the fitted feature pipeline is one machine's")
        func manifest(_ model: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/model.json"))) as! [String: Any]
        }
        let (m1, m2) = (try manifest(d + "/g1"), try manifest(d + "/g2"))
        for key in ["train_features_checksum", "valid_features_checksum", "train_rows", "valid_rows"] {
            XCTAssertNotNil(m1[key], key)
            XCTAssertEqual(m1[key] as? NSObject, m2[key] as? NSObject, "\(key): the feature matrices are one machine's")
        }
        func ensembleAUC(_ model: String) throws -> Double {
            let o = CLI.json(try CLI.ok(["gbdt", "eval", "--model", model, "--data", d + "/rs/test.tsv", "--json"]))
            let models = (o["models"] as? [[String: Any]]) ?? []
            return models.first { ($0["model"] as? String) == "ensemble" }?["auc"] as? Double ?? -1
        }
        let (a1, a2) = (try ensembleAUC(d + "/g1"), try ensembleAUC(d + "/g2"))
        XCTAssertGreaterThan(a1, 0.7)
        // Same features, bins and bags; LightGBM's data-parallel learner still grows slightly
        // different trees than its serial one (docs/distributed.md: "LightGBM over the same communicator").
        print("GBDT ensemble AUC 1 process \(a1), 2 ranks \(a2)")
        XCTAssertEqual(a1, a2, accuracy: 0.01)
        // A validation file of its own is read in contiguous runs as well.
        let v = try CLI.mpirun(ranks: 2, args + ["--valid", d + "/rs/test.tsv", "--out", d + "/g3"])
        XCTAssertEqual(v.status, 0, v.stderr)
        try CLI.ok(args + ["--valid", d + "/rs/test.tsv", "--out", d + "/g4"])
        let (m3, m4) = (try manifest(d + "/g3"), try manifest(d + "/g4"))
        XCTAssertEqual(m3["valid_features_checksum"] as? String, m4["valid_features_checksum"] as? String)
    }

    func testFailuresEndTheJobCleanly() throws {
        let d = Self.dir, train = d + "/data/train.csv"
        let tiny = ["--embedding-dim", "4", "--hidden", "8", "--threads", "1"]
        // A rank whose rows hold a bad one (data row 1, rank 1's: rows are dealt round-robin)
        // ends the job, naming itself and the cause; no model is left.
        let bad = d + "/bad.csv"
        var lines = try String(contentsOfFile: train, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[2] = "2" + lines[2].drop { $0 != "," }
        try (lines.joined(separator: "\n") + "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try CLI.mpirun(ranks: 2, ["train", "--train", bad, "--model", "esmm", "--out", d + "/f1"] + tiny)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rank 1 of 2") && r.stderr.contains("bad.csv:3"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/f1"))
        // A killed rank ends the job within a bounded time; no model is left.
        let start = Date()
        let k = try CLI.mpirun(ranks: 1, ["train", "--train", train, "--model", "esmm", "--out", d + "/f2", "--epochs", "50"] + tiny,
                               extra: [":", "-np", "1", "/bin/sh", "-c", "sleep 1; kill -9 $$"])
        XCTAssertNotEqual(k.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 120)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/f2"))
        // Ranks that disagree on the configuration are refused before training.
        let c = try CLI.mpirun(ranks: 1, ["train", "--train", train, "--model", "esmm", "--out", d + "/f3", "--seed", "1"] + tiny,
                               extra: [":", "-np", "1", CLI.binary.path, "train", "--train", train, "--model", "esmm", "--out", d + "/f3",
                                       "--seed", "2"] + tiny)
        XCTAssertNotEqual(c.status, 0)
        XCTAssertTrue(c.stderr.contains("disagrees with rank 0 on the model configuration"), c.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/f3"))
        // Commands that are not data-parallel refuse to run as several copies.
        let e = try CLI.mpirun(ranks: 2, ["simulate", "--rows", "100", "--out", d + "/sim2"])
        XCTAssertNotEqual(e.status, 0)
        XCTAssertTrue(e.stderr.contains("funnel simulate does not run data-parallel"), e.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/sim2"))
        // --distributed outside mpirun says so.
        try CLI.fails(["train", "--train", train, "--model", "esmm", "--out", d + "/f4", "--distributed"] + tiny,
                      saying: "--distributed runs under mpirun", status: 1)
    }

    /// The mpirun output normalisation the tests above read through: a banner mpirun printed in
    /// the middle of a rank's message (as captured from a failing run) goes, the message reads whole.
    func testLauncherBannersAreRemovedFromRankMessages() {
        let dashes = String(repeating: "-", count: 74)
        let captured = "Error: funnel si\(dashes)\nPrimary job  terminated normally, but 1 process returned\n"
            + "a non-zero exit code. Per user-direction, the job has been aborted.\n\(dashes)\n"
            + "mulate does not run data-parallel (mpirun started 2 copies); only train and gbdt train do\n"
            + "\(dashes)\nmpirun detected that one or more processes exited with non-zero status\n\(dashes)\n"
        XCTAssertEqual(CLI.withoutLauncherBanners(captured),
                       "Error: funnel simulate does not run data-parallel (mpirun started 2 copies); only train and gbdt train do\n")
    }

    /// Ranks that see different files at one path (each rank's working directory holds its own
    /// `data.csv`, as another mount would) are refused before the first step, naming both.
    func testRanksThatSeeDifferentFilesAtOnePathAreRefused() throws {
        let a = Self.dir + "/wa", b = Self.dir + "/wb"
        for d in [a, b] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let text = try String(contentsOfFile: Self.dir + "/data/train.csv", encoding: .utf8)
        try text.write(toFile: a + "/data.csv", atomically: true, encoding: .utf8)
        try text.split(separator: "\n").prefix(500).joined(separator: "\n").appending("\n").write(toFile: b + "/data.csv", atomically: true, encoding: .utf8)
        let train = ["train", "--model", "esmm", "--train", "data.csv", "--out", Self.dir + "/mixed", "--epochs", "1"]
        let r = try CLI.mpirun(ranks: 1, ["-wdir", a, CLI.binary.path] + train,
                               extra: [":", "-wdir", b, "-np", "1", CLI.binary.path] + train, programGiven: true)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rank 1 sees data.csv as"), r.stderr)
        XCTAssertTrue(r.stderr.contains("every rank must read the same file"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.dir + "/mixed"), "no model from a mix")
    }

    /// A rank that stops answering (SIGSTOP) ends the job after --collective-timeout, and the
    /// ranks waiting for it idle meanwhile instead of spinning.
    func testAStoppedRankEndsTheJobAfterTheCollectiveTimeout() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try CLI.mpirunPath())
        p.arguments = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2", CLI.binary.path, "train", "--model", "esmm",
                       "--train", Self.dir + "/data/train.csv", "--out", Self.dir + "/stopped", "--epochs", "200", "--collective-timeout", "3"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // Rank 1: the funnel process whose environment says so, once it is training.
        var stopped: Int32?
        for _ in 0..<200 where stopped == nil {
            Thread.sleep(forTimeInterval: 0.1)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(name), let env = FileManager.default.contents(atPath: "/proc/\(name)/environ"),
                      let cmd = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
                      String(decoding: cmd, as: UTF8.self).contains(Self.dir + "/stopped"),
                      String(decoding: env, as: UTF8.self).split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1") else { continue }
                Thread.sleep(forTimeInterval: 1.5)  // into the training loop
                kill(pid, SIGSTOP)
                stopped = pid
            }
        }
        XCTAssertNotNil(stopped, "rank 1 was not found")
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(stderr.contains("rank 0 of 2:") && stderr.contains("no answer in 3 s"), stderr)
    }
}
