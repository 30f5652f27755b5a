import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import XCTest
@testable import Funnel
@testable import FunnelServe

/// A GBDT model directory served over real HTTP answers p_install, equal to `funnel gbdt predict`.
final class GBDTServeTests: XCTestCase {
    static var dir = ""
    static var modelDir = ""

    override class func setUp() {
        dir = NSTemporaryDirectory() + "funnel-gbdt-serve-\(UUID().uuidString)"
        var c = RecSysSimulatorConfig()
        c.rows = 12_000; c.users = 2_000; c.ads = 300
        _ = try! RecSysSimulator(config: c).write(to: dir)
        var cfg = GBDTConfig()
        cfg.numIterations = 20
        cfg.features = .recsys2023Paper
        cfg.features.targetEncoding.statistics = [.mean, .median]
        let (full, settings) = try! GBDTData.readTraining(dir + "/train.tsv", preset: .auto, options: ReadOptions())
        let (train, valid) = try! GBDTData.split(full, by: cfg.split)
        modelDir = dir + "/gbdt"
        try! TwoStageGBDT.train(train: train, valid: valid, config: cfg, read: settings, threads: 2).save(to: modelDir)
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private var task: Task<Void, Error>!
    private var base = ""

    override func setUp() async throws {
        var c = ServeConfiguration(modelPath: GBDTServeTests.modelDir)
        c.port = 0
        c.workers = 2
        var logger = Logger(label: "funnel.serve.test")
        logger.logLevel = .critical
        let server = try FunnelServer(configuration: c, logger: logger)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        task = Task { try await server.run { continuation.yield($0) } }
        var iterator = stream.makeAsyncIterator()
        base = "http://127.0.0.1:\(await iterator.next()!)"
    }

    override func tearDown() async throws {
        task.cancel()
        _ = await task.result
    }

    private func post(_ rows: [[String: Any]]) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: base + "/v1/predict")!)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: ["rows": rows])
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    /// test.tsv rows as JSON objects of raw values; an empty cell is null.
    private func rows(limit: Int) -> [[String: Any]] {
        let lines = try! String(contentsOfFile: GBDTServeTests.dir + "/test.tsv", encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: "\t").map(String.init)
        return lines[1...limit].map { line in
            var row: [String: Any] = [:]
            for (name, cell) in zip(header, line.split(separator: "\t", omittingEmptySubsequences: false)) {
                if cell.isEmpty { row[name] = NSNull() } else if let i = Int(cell) { row[name] = i } else { row[name] = Double(cell)! }
            }
            return row
        }
    }

    func testPInstallEqualsGBDTPredict() async throws {
        let n = 150
        let (status, body) = try await post(rows(limit: n))
        XCTAssertEqual(status, 200)
        let predictions = body["predictions"] as! [[String: Double]]
        XCTAssertEqual(predictions.count, n)
        let model = try TwoStageGBDT.load(from: GBDTServeTests.modelDir)
        let table = try model.read(GBDTServeTests.dir + "/test.tsv", requireLabels: false)
        let expected = try model.predict(table)
        for i in 0..<n {
            XCTAssertEqual(predictions[i]["p_install"]!, expected.ensemble[i], accuracy: 1e-6)
            XCTAssertEqual(predictions[i]["p_two_step"]!, expected.twoStep[i], accuracy: 1e-6)
        }
        XCTAssertEqual((body["model"] as! [String: Any])["kind"] as? String, "gbdt-two-stage")
    }

    func testMissingFieldAndWrongTypeAreLocated() async throws {
        var r = rows(limit: 3)
        r[1].removeValue(forKey: "f_42")
        var (status, body) = try await post(r)
        XCTAssertEqual(status, 400)
        XCTAssertEqual(body["row"] as? Int, 1)
        XCTAssertEqual(body["field"] as? String, "f_42")
        r = rows(limit: 3)
        r[2]["f_1"] = "monday"
        (status, body) = try await post(r)
        XCTAssertEqual(status, 400)
        XCTAssertEqual(body["field"] as? String, "f_1")
        // A dropped column (f_9 in the paper's config) is not required.
        r = rows(limit: 2)
        r[0].removeValue(forKey: "f_9")
        (status, _) = try await post(r)
        XCTAssertEqual(status, 200)
    }

    func testModelMetadata() async throws {
        let (data, _) = try await URLSession.shared.data(from: URL(string: base + "/v1/model")!)
        let meta = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(meta["kind"] as? String, "gbdt-two-stage")
        XCTAssertEqual((meta["outputs"] as? [String])?.first, "p_install")
        XCTAssertEqual(meta["day_column"] as? String, "f_1")
    }
}
