import Foundation
import XCTest

/// `--gemm` on `train` and `predict`: the engine is reported in `--json`, and one model predicts
/// the same probabilities (within FP32 tolerance) on either engine.
final class GEMMEngineCommandTests: XCTestCase {
    /// Predicts `data` with `model` under each setting (`--flag value`), checks each `--json`
    /// reports its setting, and returns the rows and the largest difference between the two runs.
    private func predictTwice(_ d: String, flag: String, values: [String]) throws -> (rows: Int, worst: Double) {
        var columns: [[[Double]]] = []
        for value in values {
            let p = CLI.json(try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/sim/test.csv", "--out", d + "/\(value).csv",
                                         "--" + flag, value, "--json"]))
            XCTAssertEqual(p[flag] as? String, value)
            let lines = try String(contentsOfFile: d + "/\(value).csv", encoding: .utf8).split(separator: "\n").dropFirst()
            columns.append(lines.map { $0.split(separator: ",").map { Double($0)! } })
        }
        var worst = 0.0
        for (a, b) in zip(columns[0], columns[1]) { for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) } }
        return (columns[0].count, worst)
    }

    func testBothEnginesPredictTheSameModel() throws {
        let d = CLI.temporaryDirectory("gemm")
        defer { try? FileManager.default.removeItem(atPath: d) }
        try CLI.ok(["simulate", "--rows", "3000", "--seed", "5", "--out", d + "/sim"])
        let t = CLI.json(try CLI.ok(["train", "--train", d + "/sim/train.csv", "--model", "mmoe", "--out", d + "/m", "--epochs", "1",
                                     "--hidden", "32,16", "--threads", "2", "--gemm", "onednn", "--json"]))
        XCTAssertEqual(t["gemm"] as? String, "onednn")
        let (rows, worst) = try predictTwice(d, flag: "gemm", values: ["openblas", "onednn"])
        XCTAssertEqual(rows, 600)
        XCTAssertLessThan(worst, 1e-5)
        let bad = try CLI.run(["predict", "--model", d + "/m", "--data", d + "/sim/test.csv", "--out", d + "/x.csv", "--gemm", "mkl"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("gemm"), bad.stderr)
    }

    /// `--precision bf16`: trains (FP32 master weights, the saved model FP32) and predicts; on a
    /// trained model bf16 predictions stay within 2e-3 of FP32 ones (measured 5e-5 here); bf16
    /// needs the oneDNN engine.
    func testBF16TrainsAndPredictsCloseToFP32() throws {
        let d = CLI.temporaryDirectory("bf16")
        defer { try? FileManager.default.removeItem(atPath: d) }
        try CLI.ok(["simulate", "--rows", "3000", "--seed", "6", "--out", d + "/sim"])
        let t = CLI.json(try CLI.ok(["train", "--train", d + "/sim/train.csv", "--model", "esmm", "--out", d + "/m", "--epochs", "1",
                                     "--threads", "2", "--precision", "bf16", "--json"]))
        XCTAssertEqual(t["precision"] as? String, "bf16")
        let (_, worst) = try predictTwice(d, flag: "precision", values: ["fp32", "bf16"])
        XCTAssertLessThan(worst, 2e-3)
        XCTAssertGreaterThan(worst, 0, "bf16 predictions identical to FP32: the bf16 path did not run")
        let refused = try CLI.run(["predict", "--model", d + "/m", "--data", d + "/sim/test.csv", "--out", d + "/x.csv",
                                   "--precision", "bf16", "--gemm", "openblas"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--gemm onednn"), refused.stderr)
    }
}
