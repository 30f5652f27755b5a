import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import XCTest
@testable import Funnel
@testable import FunnelServe

/// The one-row-decoder contract: the same rows through a CSV + `funnel predict` (or
/// `funnel gbdt predict`) and through HTTP give identical predictions, for a neural and a GBDT
/// model directory — empty cells / null, unseen ids, strings and decimal literals in categorical
/// fields included.
final class CSVHTTPIdentityTests: XCTestCase {
    static var dir = ""

    override class func setUp() { dir = CLI.temporaryDirectory("identity") }
    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Edits cells of a delimited file's data rows: (row, column) → new cell text.
    private func edit(_ path: String, rows: Int, separator: Character, cells: [(Int, String, String)], to out: String) throws -> [String] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        var body = lines[1...rows].map { $0.split(separator: separator, omittingEmptySubsequences: false).map(String.init) }
        for (r, column, text) in cells { body[r][header.firstIndex(of: column)!] = text }
        let text = ([header] + body).map { $0.joined(separator: String(separator)) }.joined(separator: "\n") + "\n"
        try text.write(toFile: out, atomically: true, encoding: .utf8)
        return [lines[0]] + body.map { $0.joined(separator: String(separator)) }
    }

    /// The rows as a JSON body whose scalars spell exactly the cells: an empty cell is null, an
    /// integer an integer, a decimal its literal, anything else a string.
    private func jsonBody(_ lines: [String], separator: Character) -> Data {
        let header = lines[0].split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        let rows = lines[1...].map { line -> String in
            let cells = line.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
            let members = zip(header, cells).map { name, cell -> String in
                let value: String
                if cell.isEmpty { value = "null" } else if Int64(cell) != nil || (Double(cell) != nil && cell.contains(where: \.isNumber)
                                                                                && !cell.contains("\"")) {
                    value = cell
                } else {
                    value = "\"\(cell)\""
                }
                return "\"\(name)\":\(value)"
            }
            return "{" + members.joined(separator: ",") + "}"
        }
        return Data(("{\"rows\":[" + rows.joined(separator: ",") + "]}").utf8)
    }

    /// Each prediction object of the response as key → the literal text the server wrote
    /// (compared as text: a JSON parser's own rounding must not hide or invent a difference).
    private func serve(_ model: String, body: Data, precision: GEMMPrecision = .fp32) async throws -> [[String: String]] {
        var c = ServeConfiguration(modelPath: model)
        c.port = 0
        c.workers = 1
        c.gemm.precision = precision
        var logger = Logger(label: "funnel.serve.test")
        logger.logLevel = .critical
        let server = try FunnelServer(configuration: c, logger: logger)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await server.run { continuation.yield($0) } }
        defer { task.cancel() }
        var iterator = stream.makeAsyncIterator()
        let port = await iterator.next()!
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/predict")!)
        request.httpMethod = "POST"
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as! HTTPURLResponse).statusCode, 200, String(decoding: data, as: UTF8.self))
        let text = String(decoding: data, as: UTF8.self)
        let predictions = text[text.range(of: "\"predictions\":[")!.upperBound...].prefix { $0 != "]" }
        return predictions.split(separator: "}").map { object in
            var row: [String: String] = [:]
            for member in object.drop { $0 == "," || $0 == "{" }.split(separator: ",") {
                let parts = member.split(separator: ":")
                row[String(parts[0].filter { $0 != "\"" && $0 != "{" })] = String(parts[1])
            }
            return row
        }
    }

    private func csvColumns(_ path: String) throws -> [[String]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    func testNeuralModelCSVAndHTTPAgree() async throws {
        let d = Self.dir + "/neural"
        try CLI.ok(["simulate", "--rows", "4000", "--seed", "5", "--vocab-scale", "0.02", "--out", d])
        try CLI.ok(["train", "--train", d + "/train.csv", "--model", "esmm", "--out", d + "/esmm", "--embedding-dim", "4",
                    "--hidden", "16,8", "--batch-size", "256", "--threads", "1"])
        let lines = try edit(d + "/test.csv", rows: 40, separator: ",", cells: [
            (0, "101", ""), (1, "D109_14", ""), (2, "121", "987654321"), (3, "122", "abc"), (4, "124", "1.50"),
            (5, "D110_14", "2.5e-1"), (6, "205", "-7"), (7, "216", ""), (7, "D150_14", ""), (8, "301", "x y"),
        ], to: d + "/rows.csv")
        try CLI.ok(["predict", "--model", d + "/esmm", "--data", d + "/rows.csv", "--out", d + "/p.csv"])
        let fromCSV = try csvColumns(d + "/p.csv")
        let fromHTTP = try await serve(d + "/esmm", body: jsonBody(lines, separator: ","))
        XCTAssertEqual(fromCSV.count, 40)
        XCTAssertEqual(fromHTTP.count, 40)
        for (r, (csv, http)) in zip(fromCSV, fromHTTP).enumerated() {
            for (k, key) in ["pctr", "pcvr", "pctcvr"].enumerated() {
                // Both print Float's shortest round-trip text: equal text is the identical float.
                XCTAssertEqual(csv[k], http[key], "row \(r) \(key)")
            }
        }
        // The edits mattered: an empty categorical cell is not the same input as an unseen id.
        XCTAssertNotEqual(fromCSV[0], fromCSV[2])
    }

    /// `--precision bf16` on both paths: `funnel predict` (rows split over 2 workers) and the
    /// server (the request whole, one worker) print the same bytes, as in FP32.
    func testBF16CSVAndHTTPAgree() async throws {
        let d = Self.dir + "/bf16"
        try CLI.ok(["simulate", "--rows", "4000", "--seed", "7", "--vocab-scale", "0.02", "--out", d])
        try CLI.ok(["train", "--train", d + "/train.csv", "--model", "mmoe", "--out", d + "/m", "--embedding-dim", "4",
                    "--hidden", "32,16", "--threads", "1", "--precision", "bf16"])
        let lines = try edit(d + "/test.csv", rows: 37, separator: ",", cells: [(0, "101", ""), (1, "D109_14", "")], to: d + "/rows.csv")
        try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/rows.csv", "--out", d + "/p.csv", "--precision", "bf16", "--threads", "2"])
        let fromCSV = try csvColumns(d + "/p.csv")
        let fromHTTP = try await serve(d + "/m", body: jsonBody(lines, separator: ","), precision: .bf16)
        XCTAssertEqual(fromCSV.count, 37)
        XCTAssertEqual(fromHTTP.count, 37, "the server answered every row")
        for (r, (csv, http)) in zip(fromCSV, fromHTTP).enumerated() {
            for (k, key) in ["pctr", "pcvr", "pctcvr"].enumerated() { XCTAssertEqual(csv[k], http[key], "row \(r) \(key)") }
        }
    }

    /// GEMM settings belong to a network, not to the process: an FP32 and a bf16 server run in
    /// one process at once, each printing what `funnel predict` prints with its own precision.
    func testAnFP32AndABF16ModelServeInOneProcess() async throws {
        let d = Self.dir + "/two-precisions"
        try CLI.ok(["simulate", "--rows", "4000", "--seed", "8", "--vocab-scale", "0.02", "--out", d])
        try CLI.ok(["train", "--train", d + "/train.csv", "--model", "esmm", "--out", d + "/m", "--embedding-dim", "4",
                    "--hidden", "32,16", "--threads", "1"])
        let lines = try edit(d + "/test.csv", rows: 30, separator: ",", cells: [], to: d + "/rows.csv")
        try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/rows.csv", "--out", d + "/fp32.csv"])
        try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/rows.csv", "--out", d + "/bf16.csv", "--precision", "bf16"])
        let body = jsonBody(lines, separator: ",")
        async let fp32 = serve(d + "/m", body: body, precision: .fp32)
        async let bf16 = serve(d + "/m", body: body, precision: .bf16)
        let (httpFP32, httpBF16) = try await (fp32, bf16)
        let (csvFP32, csvBF16) = (try csvColumns(d + "/fp32.csv"), try csvColumns(d + "/bf16.csv"))
        XCTAssertEqual(httpFP32.count, 30)
        XCTAssertEqual(httpBF16.count, 30)
        for r in 0..<30 {
            for (k, key) in ["pctr", "pcvr", "pctcvr"].enumerated() {
                XCTAssertEqual(csvFP32[r][k], httpFP32[r][key], "fp32 row \(r) \(key)")
                XCTAssertEqual(csvBF16[r][k], httpBF16[r][key], "bf16 row \(r) \(key)")
            }
        }
        XCTAssertNotEqual(httpFP32.map { $0["pctr"] }, httpBF16.map { $0["pctr"] }, "bf16 rounding shows: each server kept its own precision")
    }

    /// Hashed ids go through the same encoder on both paths; collisions are reported at training.
    func testHashedIdsCSVAndHTTPAgree() async throws {
        let d = Self.dir + "/hashed"
        try CLI.ok(["simulate", "--rows", "4000", "--seed", "6", "--vocab-scale", "0.02", "--out", d])
        let out = CLI.json(try CLI.ok(["train", "--train", d + "/train.csv", "--model", "esmm", "--out", d + "/m", "--embedding-dim", "4",
                                       "--hidden", "8", "--threads", "1", "--hash-buckets", "121=16,205=64", "--json"]))
        let notes = (out["read_notes"] as? [String] ?? []).joined(separator: "\n")
        XCTAssertTrue(notes.contains("field 121:") && notes.contains("hashed into 16 buckets") && notes.contains("collision"), notes)
        XCTAssertTrue(try String(contentsOfFile: d + "/m/model.json", encoding: .utf8).contains("\"hash_buckets\" : 64"))
        let lines = try edit(d + "/test.csv", rows: 20, separator: ",", cells: [(0, "121", ""), (1, "205", "987654321"), (2, "205", "abc")],
                             to: d + "/rows.csv")
        try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/rows.csv", "--out", d + "/p.csv"])
        let fromCSV = try csvColumns(d + "/p.csv")
        let fromHTTP = try await serve(d + "/m", body: jsonBody(lines, separator: ","))
        XCTAssertEqual(fromCSV.count, 20)
        XCTAssertEqual(fromHTTP.count, 20, "the server answered every row")
        for (r, (csv, http)) in zip(fromCSV, fromHTTP).enumerated() {
            for (k, key) in ["pctr", "pcvr", "pctcvr"].enumerated() { XCTAssertEqual(csv[k], http[key], "row \(r) \(key)") }
        }
        try CLI.fails(["train", "--train", d + "/train.csv", "--model", "esmm", "--out", d + "/m2", "--hash-buckets", "nope=3"],
                      saying: "'nope': hash buckets name a column that is not a categorical field", status: 1)
        try CLI.fails(["train", "--train", d + "/train.csv", "--model", "esmm", "--out", d + "/m2", "--hash-buckets", "0"],
                      saying: "--hash-buckets", status: 64)
    }

    /// Multi-valued fields: the same values as a CSV cell (`id:weight|id`) and as a JSON array of
    /// ids and [id, weight] pairs (or the cell's text) give identical predictions.
    func testMultiValuedFieldsCSVAndHTTPAgree() async throws {
        let d = Self.dir + "/bags"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        var rng = RandomSource(seed: 3)
        var lines = ["click,purchase,user,hist,price"]
        var bodies: [String] = []
        for i in 0..<600 {
            let n = rng.below(5)
            var cell: [String] = [], json: [String] = []
            for _ in 0..<n {
                let id = 1 + rng.below(30)
                if rng.below(2) == 0 { cell.append("\(id)"); json.append("\(id)") } else {
                    let w = 1 + rng.below(4)
                    cell.append("\(id):\(w)"); json.append("[\(id), \(w)]")
                }
            }
            let click = rng.below(10) == 0 ? 1 : 0
            let user = 1 + rng.below(40), price = String(format: "%.3f", rng.uniform())
            lines.append("\(click),\(click == 1 && rng.below(3) == 0 ? 1 : 0),\(user),\(cell.joined(separator: "|")),\(price)")
            let hist = i % 3 == 0 ? "\"\(cell.joined(separator: "|"))\"" : (n == 0 && i % 2 == 0 ? "null" : "[" + json.joined(separator: ",") + "]")
            bodies.append("{\"user\": \(user), \"hist\": \(hist), \"price\": \(price)}")
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: d + "/data.csv", atomically: true, encoding: .utf8)
        try CLI.ok(["train", "--train", d + "/data.csv", "--model", "esmm", "--out", d + "/m", "--multi-valued", "hist", "--max-values", "3",
                    "--pooling", "mean", "--embedding-dim", "4", "--hidden", "8", "--threads", "1", "--epochs", "2", "--lr", "0.01"])
        try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/data.csv", "--out", d + "/p.csv"])
        let fromCSV = try csvColumns(d + "/p.csv")
        let fromHTTP = try await serve(d + "/m", body: Data(("{\"rows\":[" + bodies.joined(separator: ",") + "]}").utf8))
        XCTAssertEqual(fromCSV.count, 600)
        XCTAssertEqual(fromHTTP.count, 600)
        for (r, (csv, http)) in zip(fromCSV, fromHTTP).enumerated() {
            for (k, key) in ["pctr", "pcvr", "pctcvr"].enumerated() { XCTAssertEqual(csv[k], http[key], "row \(r) \(key)") }
        }
        // A cache keeps the multi-valued column; predicting from it prints the same numbers.
        try CLI.ok(["prepare", "--data", d + "/data.csv", "--out", d + "/c.fcache", "--multi-valued", "hist"])
        try CLI.ok(["predict", "--model", d + "/m", "--data", d + "/c.fcache", "--out", d + "/pc.csv"])
        XCTAssertEqual(try String(contentsOfFile: d + "/pc.csv", encoding: .utf8), try String(contentsOfFile: d + "/p.csv", encoding: .utf8))
        try CLI.fails(["train", "--train", d + "/data.csv", "--model", "esmm", "--out", d + "/m2", "--max-values", "2"],
                      saying: "--value-separator and --max-values need --multi-valued", status: 64)
    }

    func testGBDTModelCSVAndHTTPAgree() async throws {
        let d = Self.dir + "/gbdt"
        try CLI.ok(["simulate", "--layout", "recsys2023", "--rows", "12000", "--seed", "3", "--out", d])
        let config = """
            num_iterations: 15
            features:
              target_encoding: {statistics: [mean, median]}
            """
        try config.write(toFile: d + "/config.yaml", atomically: true, encoding: .utf8)
        try CLI.ok(["gbdt", "train", "--train", d + "/train.tsv", "--out", d + "/model", "--config", d + "/config.yaml",
                    "--threads", "1"])
        let lines = try edit(d + "/test.tsv", rows: 30, separator: "\t", cells: [
            (0, "f_2", ""), (1, "f_44", ""), (2, "f_3", "987654321"), (3, "f_5", "abc"), (4, "f_6", "1.50"),
            (5, "f_50", "2.5e-1"), (6, "f_10", ""),
        ], to: d + "/rows.tsv")
        try CLI.ok(["gbdt", "predict", "--model", d + "/model", "--data", d + "/rows.tsv", "--out", d + "/p.csv"])
        let fromCSV = try csvColumns(d + "/p.csv")
        let fromHTTP = try await serve(d + "/model", body: jsonBody(lines, separator: "\t"))
        XCTAssertEqual(fromCSV.count, 30)
        XCTAssertEqual(fromHTTP.count, 30)
        for (r, (csv, http)) in zip(fromCSV, fromHTTP).enumerated() {
            for (k, key) in ["p_install", "p_like", "p_install_given_like", "p_two_step", "p_end_to_end"].enumerated() {
                XCTAssertEqual(csv[k], http[key], "row \(r) \(key)")
            }
        }
    }
}
