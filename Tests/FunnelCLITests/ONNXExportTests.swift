import Foundation
import Funnel
import XCTest

/// `funnel export --format onnx` against ONNX Runtime: every model kind (and the trunks, several
/// learners, multi-valued and string fields) predicts the rows `funnel predict` predicts, within
/// 1e-5, on rows with unseen ids, empty dense cells and empty categorical cells; the ONNX
/// checker (full check) accepts each file. `Fixtures/onnx_parity.py` builds the inputs from the
/// graph's own input list, so the graph alone is what reproduces `funnel predict`.
final class ONNXExportTests: XCTestCase {
    static var dir = ""
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/onnx_parity.py").path

    override class func setUp() {
        dir = CLI.temporaryDirectory("onnx")
        let r = try! CLI.run(["simulate", "--rows", "2500", "--seed", "4", "--out", dir + "/sim"])
        precondition(r.status == 0, r.stderr)
        // Test rows: 10,000 (the simulated test rows repeated), with unseen ids, empty dense and
        // empty categorical cells; a multi-valued `tags` column (weighted, some unseen values, some
        // empty bags) and a text-valued `city` column for the second data set.
        func rewrite(_ src: String, _ dst: String, rows target: Int?, extra: Bool) throws {
            let lines = try String(contentsOfFile: src, encoding: .utf8).split(separator: "\n").map(String.init)
            let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let body = Array(lines.dropFirst())
            var out = [header.joined(separator: ",") + (extra ? ",tags,city" : "")]
            let n = target ?? body.count
            for i in 0..<n {
                var cells = body[i % body.count].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                if target != nil {
                    if i % 7 == 0, let k = header.firstIndex(of: "D109_14") { cells[k] = "" }
                    if i % 11 == 0, let k = header.firstIndex(of: "205") { cells[k] = "\(90_000_000 + i)" }
                    if i % 13 == 0, let k = header.firstIndex(of: "301") { cells[k] = "" }
                }
                if extra {
                    let count = i % 5
                    let tags = (0..<count).map { j -> String in
                        let v = target != nil && (i + j) % 17 == 0 ? 500_000 + i : 1 + (i * 7 + j * 13) % 60
                        return j % 3 == 0 ? "\(v)" : "\(v):\(Double((i + j) % 4) * 0.5 + 0.5)"
                    }
                    let cities = ["paris", "rome", "oslo", "x\(i % 41)", ""]
                    cells += [tags.joined(separator: "|"), cities[i % cities.count]]
                }
                out.append(cells.joined(separator: ","))
            }
            try (out.joined(separator: "\n") + "\n").write(toFile: dst, atomically: true, encoding: .utf8)
        }
        try! rewrite(dir + "/sim/test.csv", dir + "/rows.csv", rows: 10_000, extra: false)
        try! rewrite(dir + "/sim/train.csv", dir + "/train-bags.csv", rows: nil, extra: true)
        try! rewrite(dir + "/sim/test.csv", dir + "/rows-bags.csv", rows: 10_000, extra: true)
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Trains `args`, predicts `rows` with funnel, exports, and runs ONNX Runtime on the same rows.
    private func parity(_ name: String, _ args: [String], train: String = "sim/train.csv", rows: String = "rows.csv",
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let d = Self.dir
        let tiny = ["--epochs", "1", "--embedding-dim", "4", "--hidden", "8", "--threads", "1"]
        try CLI.ok(["train", "--train", d + "/" + train, "--out", d + "/\(name)"] + args + tiny, file: file, line: line)
        try CLI.ok(["predict", "--model", d + "/\(name)", "--data", d + "/" + rows, "--out", d + "/\(name).csv"], file: file, line: line)
        let exported = CLI.json(try CLI.ok(["export", "--model", d + "/\(name)", "--format", "onnx", "--out", d + "/\(name).onnx", "--json"],
                                           file: file, line: line))
        XCTAssertEqual(exported["opset"] as? Int, 17, file: file, line: line)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.script, d + "/\(name).onnx", d + "/" + rows, d + "/\(name).csv"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(name): \(errors)", file: file, line: line)
        let r = CLI.json(text)
        XCTAssertEqual(r["rows"] as? Int, 10_000, name, file: file, line: line)
        XCTAssertEqual(r["checker"] as? String, "ok", name, file: file, line: line)
        let diffs = r["max_abs_diff"] as? [String: Double] ?? [:], nan = r["nan_mismatch"] as? [String: Int] ?? [:]
        for k in ["pctr", "pcvr", "pctcvr"] {
            XCTAssertLessThan(diffs[k] ?? 1, 1e-5, "\(name) \(k)", file: file, line: line)
            XCTAssertEqual(nan[k], 0, "\(name) \(k): NaN where funnel predict has a number, or the reverse", file: file, line: line)
        }
    }

    func testEveryModelKindMatchesFunnelPredict() throws {
        for kind in ModelKind.allCases.map(\.rawValue) {  // a new model kind is covered the day it lands
            try parity(kind, ["--model", kind])
        }
    }

    func testTrunksLearnersBagsAndTextFields() throws {
        try parity("taml3", ["--model", "taml", "--learners", "3"])
        try parity("esmm-ple", ["--model", "esmm", "--arch", "ple"])
        try parity("aitm-mmoe", ["--model", "aitm", "--arch", "mmoe"])
        try parity("ipsp-bottom", ["--model", "ipsp", "--arch", "shared-bottom"])
        // DCN-v2's cross layers: stacked under the towers (full rank), under MMoE's experts (low
        // rank), under each of ESMM-NS's two trunks.
        try parity("esmm-dcn", ["--model", "esmm", "--arch", "dcn"])
        try parity("mmoe-cross", ["--model", "mmoe", "--cross-layers", "2", "--cross-rank", "4"])
        try parity("esmm-ns-cross", ["--model", "esmm-ns", "--arch", "dcn", "--cross-layers", "1"])
        for pooling in [["--pooling", "sum"], ["--pooling", "mean"], ["--pooling", "mean", "--ignore-values"]] {
            try parity("bags-" + pooling.joined(), ["--model", "esmm", "--multi-valued", "tags"] + pooling,
                       train: "train-bags.csv", rows: "rows-bags.csv")
        }
        // DIN target attention over `tags` with field 206's embedding as the query: the scores, the
        // value weights and (softmax) the per-row normalisation in the graph; empty lists pool to 0.
        try parity("bags-attention", ["--model", "esmm", "--multi-valued", "tags", "--pooling", "attention", "--attention-query", "tags=206"],
                   train: "train-bags.csv", rows: "rows-bags.csv")
        try parity("bags-attention-softmax", ["--model", "mmoe", "--multi-valued", "tags", "--pooling", "attention",
                                              "--attention-query", "tags=206", "--attention-normalize", "--ignore-values"],
                   train: "train-bags.csv", rows: "rows-bags.csv")
        // The list and its query sharing one vocabulary and one block of rows (--share-embedding).
        try parity("bags-attention-shared", ["--model", "esmm", "--multi-valued", "tags", "--pooling", "attention",
                                             "--attention-query", "tags=206", "--share-embedding", "tags,206"],
                   train: "train-bags.csv", rows: "rows-bags.csv")
        // Every value rarer than --min-count: each field (text and multi-valued ones included) has
        // an empty vocabulary and maps every row to its out-of-vocabulary row.
        try parity("empty-vocabularies", ["--model", "esmm", "--multi-valued", "tags", "--min-count", "1000000"],
                   train: "train-bags.csv", rows: "rows-bags.csv")
    }

    func testWhatCannotBeExportedSaysWhy() throws {
        let d = Self.dir
        try CLI.ok(["train", "--train", d + "/sim/train.csv", "--model", "esmm", "--out", d + "/hashed", "--hash-buckets", "64",
                    "--epochs", "1", "--embedding-dim", "4", "--hidden", "8", "--threads", "1"])
        let r = try CLI.run(["export", "--model", d + "/hashed", "--out", d + "/hashed.onnx"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("hashed") && r.stderr.contains("cannot be exported"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/hashed.onnx"))
        let opset = try CLI.run(["export", "--model", d + "/hashed", "--out", d + "/x.onnx", "--opset", "9"])
        XCTAssertNotEqual(opset.status, 0)
        XCTAssertTrue(opset.stderr.contains("--opset"), opset.stderr)
        let missing = try CLI.run(["export", "--model", d + "/nope", "--out", d + "/x.onnx"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("nope"), missing.stderr)
    }
}
