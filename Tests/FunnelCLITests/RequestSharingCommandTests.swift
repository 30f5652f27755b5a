import Foundation
import XCTest

/// Request sharing through the commands: raw Ali-CCP caches share with no flag, CSVs with
/// `--request-column`/`--request-fields`; `--no-request-sharing` is the per-row path; predictions
/// are the same either way; bad request columns are located errors or counted skips.
final class RequestSharingCommandTests: XCTestCase {
    static let tiny = ["--embedding-dim", "4", "--hidden", "8", "--batch-size", "256", "--threads", "2"]

    private func predictions(_ csv: String) -> [[Double]] {
        csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map { Double($0) ?? .nan } }
    }

    private func assertSame(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) {
        let x = predictions(a), y = predictions(b)
        XCTAssertEqual(x.count, y.count, file: file, line: line)
        for (r, (u, v)) in zip(x, y).enumerated() {
            for (p, q) in zip(u, v) where !p.isNaN { XCTAssertEqual(p, q, accuracy: 1e-5, "row \(r)", file: file, line: line) }
        }
    }

    func testARawAliCCPCacheSharesItsCommonFeatures() throws {
        let dir = CLI.temporaryDirectory("request-sharing-raw")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try CLI.ok(["simulate", "--layout", "ali-ccp-raw", "--rows", "6000", "--seed", "3", "--vocab-scale", "0.05",
                    "--impressions-per-request", "12", "--out", dir])
        for part in ["train", "test"] {
            try CLI.ok(["prepare", "--layout", "ali-ccp", "--data", dir + "/sample_skeleton_\(part).csv",
                        "--common", dir + "/common_features_\(part).csv", "--out", dir + "/\(part).fcache"])
        }
        let shared = CLI.json(try CLI.ok(["train", "--train", dir + "/train.fcache", "--model", "esmm", "--out", dir + "/m", "--json"] + Self.tiny))
        let report = shared["request_sharing"] as! [String: Any]
        XCTAssertEqual(report["enabled"] as? Bool, true)
        XCTAssertEqual(report["split_trunks"] as? [String], ["embedding"])
        XCTAssertEqual(report["fallbacks"] as? [String], [])
        XCTAssertEqual(Set(report["shared_fields"] as! [String]), ["101", "121", "122", "124", "125", "126", "127", "128", "129",
                                                                    "109_14", "110_14", "127_14", "150_14"])
        XCTAssertGreaterThan(report["rows_per_request"] as? Double ?? 0, 5)
        let plain = CLI.json(try CLI.ok(["train", "--train", dir + "/train.fcache", "--model", "esmm", "--out", dir + "/p", "--json",
                                         "--no-request-sharing"] + Self.tiny))
        XCTAssertEqual((plain["request_sharing"] as? [String: Any])?["enabled"] as? Bool, false)
        // The same model predicts the same rows with and without sharing, streamed from the cache.
        let a = try CLI.ok(["predict", "--model", dir + "/m", "--data", dir + "/test.fcache", "--out", "-"])
        let b = try CLI.ok(["predict", "--model", dir + "/m", "--data", dir + "/test.fcache", "--out", "-", "--no-request-sharing"])
        assertSame(a, b)
        // eval reads request-level too: the same metrics.
        let truth = ["--truth", dir + "/sample_skeleton_test_truth.csv", "--json"]
        let ea = CLI.json(try CLI.ok(["eval", "--model", dir + "/m", "--data", dir + "/test.fcache"] + truth))
        let eb = CLI.json(try CLI.ok(["eval", "--model", dir + "/m", "--data", dir + "/test.fcache", "--no-request-sharing"] + truth))
        for key in ["auc_ctr", "auc_ctcvr", "auc_cvr_entire_space", "logloss_ctcvr"] {
            XCTAssertEqual(CLI.auc(ea, key) ?? -1, CLI.auc(eb, key) ?? -2, accuracy: 1e-6, key)
        }
        // DIN's attention reads a behaviour list per candidate: kept per request, expanded per row.
        try CLI.ok(["train", "--train", dir + "/train.fcache", "--model", "esmm", "--pooling", "attention", "--attention-query", "109_14=206",
                    "--out", dir + "/din"] + Self.tiny)
        assertSame(try CLI.ok(["predict", "--model", dir + "/din", "--data", dir + "/test.fcache", "--out", "-"]),
                   try CLI.ok(["predict", "--model", dir + "/din", "--data", dir + "/test.fcache", "--out", "-", "--no-request-sharing"]))
        // Streaming under a memory budget shares too; DCN-v2's crosses fall back and say so.
        let streamed = CLI.json(try CLI.ok(["train", "--train", dir + "/train.fcache", "--model", "esmm", "--out", dir + "/s", "--json",
                                            "--memory-budget", "400"] + Self.tiny))
        XCTAssertEqual((streamed["request_sharing"] as? [String: Any])?["enabled"] as? Bool, true)
        let dcn = CLI.json(try CLI.ok(["train", "--train", dir + "/train.fcache", "--model", "esmm", "--arch", "dcn", "--out", dir + "/d",
                                       "--json"] + Self.tiny))
        let fallbacks = (dcn["request_sharing"] as? [String: Any])?["fallbacks"] as? [String] ?? []
        XCTAssertTrue(fallbacks.first?.contains("DCN-v2") ?? false, "\(fallbacks)")
        try checkExperimentsAndTuningShareAsTrainDoes(dir)
    }

    /// `funnel experiment` and `tune` train as `funnel train` does: sharing by default (run 1 of
    /// seed 0 is `train --seed 1`: the same metrics), per row with `--no-request-sharing`; a tuning
    /// directory's trials are kept only by a rerun that shares as they did.
    private func checkExperimentsAndTuningShareAsTrainDoes(_ dir: String) throws {
        let one = ["--embedding-dim", "4", "--hidden", "8", "--batch-size", "256", "--threads", "1"]
        let truth = ["--truth", dir + "/sample_skeleton_test_truth.csv"]
        var auc: [String: Double] = [:]
        for mode in [[], ["--no-request-sharing"]] {
            try CLI.ok(["train", "--train", dir + "/train.fcache", "--model", "esmm", "--seed", "1", "--out", dir + "/e\(mode.count)"] + one + mode)
            let trained = CLI.json(try CLI.ok(["eval", "--model", dir + "/e\(mode.count)", "--data", dir + "/test.fcache", "--json"] + truth))
            let experiment = CLI.json(try CLI.ok(["experiment", "--train", dir + "/train.fcache", "--test", dir + "/test.fcache", "--models", "esmm",
                                                  "--runs", "1", "--seed", "0", "--json"] + truth + one + mode))
            let metrics = ((experiment["rows"] as! [[String: Any]])[0]["metrics"]) as! [String: [String: Any]]
            for key in ["auc_ctr", "auc_ctcvr", "auc_cvr_entire_space"] {
                XCTAssertEqual(metrics[key]?["mean"] as? Double ?? -1, CLI.auc(trained, key) ?? -2, accuracy: 1e-12, "\(key) \(mode)")
            }
            auc[mode.joined()] = metrics["auc_ctr"]?["mean"] as? Double
        }
        XCTAssertNotEqual(auc[""], auc["--no-request-sharing"], "batches of whole requests are other batches")
        let tuning = dir + "/tuning"
        try Data("lr: [0.001]\n".utf8).write(to: URL(fileURLWithPath: dir + "/space.yaml"))
        func tune(_ mode: [String]) throws -> Bool? {
            try CLI.ok(["tune", "--train", dir + "/train.fcache", "--valid", dir + "/test.fcache", "--model", "esmm", "--space", dir + "/space.yaml",
                        "--trials", "1", "--strategy", "grid", "--out", tuning] + one + mode)
            let results = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tuning + "/results.json"))) as! [String: Any]
            return (results["trials"] as! [[String: Any]])[0]["request_sharing"] as? Bool
        }
        XCTAssertEqual(try tune([]), true)
        XCTAssertEqual(try tune(["--no-request-sharing"]), false, "a shared trial is not kept for a per-row tuning")
    }

    /// A CSV of requests: `req` names the request, `u` and `hist` (multi-valued) are the user's,
    /// `item`, `pos` and `d` the candidate's.
    static func requestCSV(rows: Int, seed: UInt64, breakLine: Int? = nil) -> String {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next(_ n: Int) -> Int { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return Int(state % UInt64(n)) }
        var out = "req,u,hist,item,pos,d,click,buy\n"
        var r = 0, line = 1, request = 0, broken = false
        while r < rows {
            request += 1
            let user = next(40), hist = (0..<next(4)).map { _ in "\(next(30)):\(1 + next(3))" }.joined(separator: "|")
            for k in 0..<(1 + next(9)) where r < rows {
                line += 1
                // The first row past `breakLine` that is not its request's first gets another user.
                let breaks = !broken && k > 0 && breakLine.map { line >= $0 } == true
                broken = broken || breaks
                let click = next(5) == 0 ? 1 : 0
                out += "q\(request),\(breaks ? user + 1 : user),\(hist),\(next(50)),\(next(8)),\(Double(next(100)) / 10),\(click),\(click == 1 && next(3) == 0 ? 1 : 0)\n"
                r += 1
            }
        }
        return out
    }

    func testACSVSharesByItsRequestColumn() throws {
        let dir = CLI.temporaryDirectory("request-sharing-csv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = dir + "/train.csv", test = dir + "/test.csv"
        try Self.requestCSV(rows: 3000, seed: 1).write(toFile: train, atomically: true, encoding: .utf8)
        try Self.requestCSV(rows: 600, seed: 2).write(toFile: test, atomically: true, encoding: .utf8)
        let flags = ["--request-column", "req", "--request-fields", "u,hist", "--multi-valued", "hist"]
        let t = CLI.json(try CLI.ok(["train", "--train", train, "--model", "esmm", "--out", dir + "/m", "--json"] + flags + Self.tiny))
        let report = t["request_sharing"] as! [String: Any]
        XCTAssertEqual(report["shared_fields"] as? [String], ["u", "hist"])
        XCTAssertEqual((t["columns"] as? [String: Any])?["ignored"] as? [String], ["req"], "the request column is not a feature")
        let a = try CLI.ok(["predict", "--model", dir + "/m", "--data", test, "--out", "-"] + flags)
        let b = try CLI.ok(["predict", "--model", dir + "/m", "--data", test, "--out", "-", "--multi-valued", "hist"])
        assertSame(a, b)
        // A row whose user field differs from its request's first row: located, or skipped and counted.
        let bad = dir + "/bad.csv"
        try Self.requestCSV(rows: 200, seed: 1, breakLine: 40).write(toFile: bad, atomically: true, encoding: .utf8)
        try CLI.fails(["train", "--train", bad, "--model", "esmm", "--out", dir + "/x"] + flags + Self.tiny,
                      saying: "column 'u': differs from line")
        let skipped = CLI.json(try CLI.ok(["train", "--train", bad, "--model", "esmm", "--out", dir + "/y", "--json", "--skip-bad-rows"]
                                          + flags + Self.tiny))
        XCTAssertEqual(skipped["rows"] as? Int, 199, "one row skipped")
        try CLI.fails(["train", "--train", train, "--model", "esmm", "--out", dir + "/z", "--request-column", "nope", "--request-fields", "u"]
                      + Self.tiny, saying: "request column is missing")
        try CLI.fails(["train", "--train", train, "--model", "esmm", "--out", dir + "/z", "--request-column", "req", "--request-fields", "item2"]
                      + Self.tiny, saying: "a request field must be a categorical column")
        try CLI.fails(["train", "--train", train, "--model", "esmm", "--out", dir + "/z", "--request-column", "req"] + Self.tiny,
                      saying: "--request-column and --request-fields go together", status: 64)
    }

    /// `funnel prepare --request-column … --request-fields …` stores each row's request (cache
    /// version 3): the cache then shares with no flag — in memory, the same weights as the CSV
    /// with its flags, and streamed — and keeps the checks and refusals of the CSV read.
    func testAPreparedCSVKeepsItsRequests() throws {
        let dir = CLI.temporaryDirectory("request-sharing-cache")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = dir + "/train.csv", cache = dir + "/train.fcache"
        try Self.requestCSV(rows: 3000, seed: 1).write(toFile: train, atomically: true, encoding: .utf8)
        let flags = ["--request-column", "req", "--request-fields", "u,hist", "--multi-valued", "hist"]
        try CLI.ok(["prepare", "--data", train, "--out", cache] + flags)
        let fromCSV = CLI.json(try CLI.ok(["train", "--train", train, "--model", "esmm", "--out", dir + "/csv", "--json"] + flags + Self.tiny))
        let fromCache = CLI.json(try CLI.ok(["train", "--train", cache, "--model", "esmm", "--out", dir + "/cache", "--json"] + Self.tiny))
        XCTAssertEqual((fromCache["request_sharing"] as? [String: Any])?["shared_fields"] as? [String], ["u", "hist"])
        XCTAssertEqual((fromCSV["request_sharing"] as? [String: Any])?["rows_per_request"] as? Double,
                       (fromCache["request_sharing"] as? [String: Any])?["rows_per_request"] as? Double)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/csv/weights.safetensors"),
                       FileManager.default.contents(atPath: dir + "/cache/weights.safetensors"), "the cache trains as its CSV does")
        // Predicting the cache's rows shares as predicting the CSV's does.
        assertSame(try CLI.ok(["predict", "--model", dir + "/cache", "--data", cache, "--out", "-"]),
                   try CLI.ok(["predict", "--model", dir + "/cache", "--data", train, "--out", "-"] + flags))
        // The same flags on the cache are accepted; streamed under a budget it shares too.
        let requestFlags = Array(flags.prefix(4))  // a cache's column roles are the prepared ones
        try CLI.ok(["train", "--train", cache, "--model", "esmm", "--out", dir + "/again"] + requestFlags + Self.tiny)
        let streamed = CLI.json(try CLI.ok(["train", "--train", cache, "--model", "esmm", "--out", dir + "/s", "--json",
                                            "--memory-budget", "300", "--shuffle-buffer-rows", "1000"] + Self.tiny))
        XCTAssertEqual((streamed["request_sharing"] as? [String: Any])?["enabled"] as? Bool, true)
        let plain = CLI.json(try CLI.ok(["train", "--train", cache, "--model", "esmm", "--out", dir + "/p", "--json", "--no-request-sharing"]
                                        + Self.tiny))
        XCTAssertEqual((plain["request_sharing"] as? [String: Any])?["enabled"] as? Bool, false)
        // Refusals: other request options than the cache's, a cache prepared without requests.
        try CLI.fails(["train", "--train", cache, "--model", "esmm", "--out", dir + "/x", "--request-column", "item", "--request-fields", "u"]
                      + Self.tiny, saying: "fixed by funnel prepare")
        try CLI.ok(["prepare", "--data", train, "--out", dir + "/plain.fcache", "--multi-valued", "hist"])
        try CLI.fails(["train", "--train", dir + "/plain.fcache", "--model", "esmm", "--out", dir + "/x"] + requestFlags + Self.tiny,
                      saying: "prepared without a request column")
        // A request whose rows disagree is found when preparing: located, or skipped and counted.
        let bad = dir + "/bad.csv"
        try Self.requestCSV(rows: 200, seed: 1, breakLine: 40).write(toFile: bad, atomically: true, encoding: .utf8)
        try CLI.fails(["prepare", "--data", bad, "--out", dir + "/bad.fcache"] + flags, saying: "column 'u': differs from line")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad.fcache"), "no cache left behind")
        let skipped = CLI.json(try CLI.ok(["prepare", "--data", bad, "--out", dir + "/bad.fcache", "--skip-bad-rows", "--json"] + flags))
        XCTAssertEqual(skipped["rows"] as? Int, 199, "one row skipped")
    }
}
