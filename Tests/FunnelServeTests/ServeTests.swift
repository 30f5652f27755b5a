import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Funnel
@testable import FunnelServe

/// Starts the real server on an ephemeral loopback port and talks to it over HTTP.
final class ServeTests: XCTestCase {
    static var dir = ""
    static var modelDir = ""
    static var otherModelDir = ""
    static var csv = ""

    override class func setUp() {
        dir = NSTemporaryDirectory() + "funnel-serve-\(UUID().uuidString)"
        try! TinyModels.simulate(into: dir, rows: 3000, seed: 9)
        csv = dir + "/test.csv"
        modelDir = dir + "/esmm"
        otherModelDir = dir + "/ipsp"
        for (kind, out) in [(ModelKind.esmm, modelDir), (.ipsp, otherModelDir)] {
            try! TinyModels.train(kind, hidden: [16, 8], on: dir, to: out)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private var server: FunnelServer!
    private var task: Task<Void, Error>!
    private var base = ""

    override func setUp() async throws {
        var c = ServeConfiguration(modelPath: ServeTests.modelDir)
        c.port = 0
        c.maxRowsPerRequest = 500
        c.maxBodyBytes = 200_000
        c.workers = 2
        c.reload.allowHTTP = true
        c.reload.modelRoot = ServeTests.dir
        c.reload.allowSchemaChange = true
        c.bodyTimeout = 2
        c.headerTimeout = 2
        var logger = Logger(label: "funnel.serve.test")
        logger.logLevel = .critical  // cancellation at tearDown makes the server log shutdown noise
        server = try FunnelServer(configuration: c, logger: logger)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let s = server!
        task = Task { try await s.run { continuation.yield($0) } }
        var iterator = stream.makeAsyncIterator()
        let port = await iterator.next()!
        base = "http://127.0.0.1:\(port)"
    }

    override func tearDown() async throws {
        task.cancel()
        _ = await task.result
    }

    private func call(_ path: String, method: String = "GET", body: Data? = nil) async throws -> (Int, Data) {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.httpBody = body
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data)
    }

    private func json(_ d: Data) -> [String: Any] { (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] ?? [:] }

    /// The CSV's rows as JSON objects of raw values (integers stay integers, decimals numbers).
    private func csvRows(limit: Int) -> [[String: Any]] {
        let lines = try! String(contentsOfFile: ServeTests.csv, encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",").map(String.init)
        return lines[1...limit].map { line in
            var row: [String: Any] = [:]
            for (k, v) in zip(header, line.split(separator: ",", omittingEmptySubsequences: false)) {
                row[k] = Int(v) ?? Double(v)!
            }
            return row
        }
    }

    func testPredictionsEqualFunnelPredict() async throws {
        let rows = csvRows(limit: 250)
        let (status, data) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": rows]))
        XCTAssertEqual(status, 200, String(decoding: data, as: UTF8.self))
        let predictions = json(data)["predictions"] as! [[String: Double]]
        XCTAssertEqual(predictions.count, 250)
        // What `funnel predict` computes for the same rows of the CSV.
        let model = try TrainedModel.load(from: ServeTests.modelDir)
        let (encoded, _) = try DatasetLoader.load(ServeTests.csv, schema: model.schema, options: ReadOptions(), requireLabels: false)
        let expected = model.network.predict(encoded)
        for i in 0..<250 {
            XCTAssertEqual(predictions[i]["pctr"]!, Double(expected.ctr[i]), accuracy: 1e-6)
            XCTAssertEqual(predictions[i]["pcvr"]!, Double(expected.cvr[i]), accuracy: 1e-6)
            XCTAssertEqual(predictions[i]["pctcvr"]!, Double(expected.ctcvr[i]), accuracy: 1e-6)
        }
    }

    /// The ranking form `{"request": {user fields}, "rows": [candidates]}` predicts what the flat
    /// form predicts for rows repeating the request's fields (the request part computed once).
    func testTheRankingFormPredictsAsTheFlatForm() async throws {
        let userFields = ["101", "121", "122", "124", "125", "126", "127", "128", "129"]
        let source = csvRows(limit: 40)
        let request = source[0].filter { userFields.contains($0.key) }
        XCTAssertEqual(request.count, userFields.count)
        let candidates = source.map { $0.filter { !userFields.contains($0.key) } }
        let flat = candidates.map { $0.merging(request) { a, _ in a } }
        let (s1, d1) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": flat]))
        let (s2, d2) = try await call("/v1/predict", method: "POST",
                                      body: try JSONSerialization.data(withJSONObject: ["request": request, "rows": candidates]))
        XCTAssertEqual(s1, 200, String(decoding: d1, as: UTF8.self))
        XCTAssertEqual(s2, 200, String(decoding: d2, as: UTF8.self))
        let a = json(d1)["predictions"] as! [[String: Double]], b = json(d2)["predictions"] as! [[String: Double]]
        XCTAssertEqual(a.count, 40)
        XCTAssertEqual(b.count, 40)
        for i in 0..<40 { for k in ["pctr", "pcvr", "pctcvr"] { XCTAssertEqual(a[i][k]!, b[i][k]!, accuracy: 1e-6, "row \(i) \(k)") } }

        // A field sent in both places is refused, naming the row and the field.
        var both = candidates
        both[3]["121"] = 1
        let (s3, d3) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["request": request, "rows": both]))
        XCTAssertEqual(s3, 400)
        XCTAssertEqual(json(d3)["row"] as? Int, 3)
        XCTAssertEqual(json(d3)["field"] as? String, "121")
        // The request object gets the rows' limits: a nested value is located, depth and width are bounded.
        var nested = request
        nested["122"] = ["deep": ["deeper": 1]]
        let (s4, d4) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["request": nested, "rows": candidates]))
        XCTAssertEqual(s4, 400)
        XCTAssertEqual(json(d4)["field"] as? String, "122")
        XCTAssertNil(json(d4)["row"], "the request's value, not a row's")
        XCTAssertTrue((json(d4)["error"] as? String ?? "").hasSuffix("(in the request)"))
        var wide: [String: Any] = [:]
        for k in 0..<5_000 { wide["x\(k)"] = k }
        let (s5, _) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["request": wide, "rows": candidates]))
        XCTAssertEqual(s5, 400, "a request object wider than a row may be")
    }

    func testBadInputGetsLocated400s() async throws {
        var rows = csvRows(limit: 3)
        rows[1]["205"] = ["nested": 1]
        var (status, data) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": rows]))
        XCTAssertEqual(status, 400)
        XCTAssertEqual(json(data)["row"] as? Int, 1)
        XCTAssertEqual(json(data)["field"] as? String, "205")
        XCTAssertTrue((json(data)["error"] as? String ?? "").contains("expected an integer, a string or null"))

        rows = csvRows(limit: 3)
        rows[2]["D109_14"] = "high"
        (status, data) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": rows]))
        XCTAssertEqual(status, 400)
        XCTAssertEqual(json(data)["row"] as? Int, 2)
        XCTAssertEqual(json(data)["field"] as? String, "D109_14")

        rows = csvRows(limit: 2)
        rows[0].removeValue(forKey: "301")
        (status, data) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": rows]))
        XCTAssertEqual(status, 400)
        XCTAssertEqual(json(data)["error"] as? String, "missing required field")
        XCTAssertEqual(json(data)["field"] as? String, "301")

        // Unknown fields are ignored by default; unseen categories map to the OOV id.
        rows = csvRows(limit: 2)
        rows[0]["not_a_feature"] = 1
        rows[1]["205"] = 987_654_321
        (status, _) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": rows]))
        XCTAssertEqual(status, 200)

        (status, data) = try await call("/v1/predict", method: "POST", body: Data("{\"rows\": [".utf8))
        XCTAssertEqual(status, 400)
        (status, _) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": csvRows(limit: 501)]))
        XCTAssertEqual(status, 413, "more rows than --max-rows")
        (status, _) = try await call("/v1/predict", method: "POST", body: Data(repeating: 32, count: 300_000))
        XCTAssertEqual(status, 413, "body over --max-body-bytes")
        // Still healthy after all of it.
        (status, _) = try await call("/healthz")
        XCTAssertEqual(status, 200)
    }

    func testReloadRefusesBrokenModelAndSwapsGoodOne() async throws {
        let broken = ServeTests.dir + "/broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try "{\"format\": \"something-else\"}".write(toFile: broken + "/model.json", atomically: true, encoding: .utf8)
        var (status, data) = try await call("/v1/reload", method: "POST", body: Data("{\"model\": \"\(broken)\"}".utf8))
        XCTAssertEqual(status, 422)
        XCTAssertEqual(json(data)["serving"] as? String, ServeTests.modelDir)
        (status, data) = try await call("/v1/model")
        XCTAssertEqual(json(data)["kind"] as? String, "esmm", "the old model keeps serving")

        (status, data) = try await call("/v1/reload", method: "POST", body: Data("{\"model\": \"\(ServeTests.otherModelDir)\"}".utf8))
        XCTAssertEqual(status, 200, String(decoding: data, as: UTF8.self))
        (status, data) = try await call("/v1/predict", method: "POST", body: try JSONSerialization.data(withJSONObject: ["rows": csvRows(limit: 1)]))
        XCTAssertEqual((json(data)["model"] as? [String: Any])?["kind"] as? String, "ipsp")

        (status, data) = try await call("/metrics")
        let text = String(decoding: data, as: UTF8.self)
        for name in ["funnel_requests_total", "funnel_request_duration_seconds_bucket", "funnel_rows_per_request", "funnel_model_reloads_total"] {
            XCTAssertTrue(text.contains(name), name)
        }
        XCTAssertTrue(text.contains("result=\"refused\""))
    }

    /// Deep nesting anywhere is a 400, never a crash (the parser recursed without bound).
    func testDeepNestingIsRefused() async throws {
        let deep = String(repeating: "[", count: 90_000) + String(repeating: "]", count: 90_000)
        for body in ["{\"rows\":[{\"101\": \(deep)}]}", "{\"rows\":[{\"nope\": \(deep)}]}", "{\"meta\": \(deep), \"rows\": []}",
                     "{\"rows\":[{\"101\": " + String(repeating: "[", count: 190_000) + "}]}"] {
            let (status, data) = try await call("/v1/predict", method: "POST", body: Data(body.utf8))
            XCTAssertEqual(status, 400)
            XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("nesting deeper than 64"), String(decoding: data.prefix(200), as: UTF8.self))
        }
        let (status, _) = try await call("/healthz")
        XCTAssertEqual(status, 200)
    }

    /// The row limit is enforced while parsing: a million empty rows are refused at row 501.
    func testRowLimitAppliesWhileParsing() async throws {
        let body = "{\"rows\":[" + Array(repeating: "{}", count: 60_000).joined(separator: ",") + "]}"
        let (status, data) = try await call("/v1/predict", method: "POST", body: Data(body.utf8))
        XCTAssertEqual(status, 413)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("more than 500 rows"))
        let wide = "{\"rows\":[{" + (0..<200).map { "\"f\($0)\": 1" }.joined(separator: ",") + "}]}"
        let (s2, d2) = try await call("/v1/predict", method: "POST", body: Data(wide.utf8))
        XCTAssertEqual(s2, 400)
        XCTAssertTrue(String(decoding: d2, as: UTF8.self).contains("more than"), String(decoding: d2, as: UTF8.self))
    }

    func testMethodsAndHead() async throws {
        var request = URLRequest(url: URL(string: base + "/v1/predict")!)
        request.httpMethod = "GET"
        var (_, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as! HTTPURLResponse).statusCode, 405)
        XCTAssertEqual((response as! HTTPURLResponse).value(forHTTPHeaderField: "Allow"), "POST")
        request = URLRequest(url: URL(string: base + "/healthz")!)
        request.httpMethod = "DELETE"
        (_, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as! HTTPURLResponse).statusCode, 405)
        XCTAssertEqual((response as! HTTPURLResponse).value(forHTTPHeaderField: "Allow"), "GET, HEAD")
        request.httpMethod = "HEAD"
        (_, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as! HTTPURLResponse).statusCode, 200)
    }

    /// Raw socket helpers for what URLSession will not send.
    private func rawExchange(_ bytes: String, waitForClose: TimeInterval, halfClose: Bool = false) throws -> (String, closed: Bool) {
        let port = Int(base.split(separator: ":").last!)!
        let fd = Loopback.connect(port: port, sending: bytes)
        defer { close(fd) }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var tv = timeval(tv_sec: Int(waitForClose), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out = [UInt8](), buffer = [UInt8](repeating: 0, count: 65536), closed = false
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { closed = true; break }
            if n < 0 { closed = errno == ECONNRESET; break }
            out += buffer[0..<n]
        }
        return (String(decoding: out, as: UTF8.self), closed)
    }

    /// Stalled uploads and half-sent heads are closed by the server within their timeouts (2 s here).
    /// (Each exchange waits at most 8 s for the close: the bound is the socket deadline, not a clock.)
    func testSlowAndPartialRequestsAreClosed() throws {
        let (_, closedHead) = try rawExchange("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le", waitForClose: 8)
        XCTAssertTrue(closedHead, "a partial header is closed")
        let (_, closedBody) = try rawExchange("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"rows\"", waitForClose: 8)
        XCTAssertTrue(closedBody, "a stalled body is closed")
    }

    /// A body over the limit declared up front is refused without reading it, and the connection closes.
    func testDeclaredOversizedBodyIs413AndCloses() throws {
        let (text, closed) = try rawExchange("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n{", waitForClose: 5)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 413"), text)
        XCTAssertTrue(text.contains("exceeds the limit of 200000 bytes"), text)
        XCTAssertTrue(closed)
        let (bad, _) = try rawExchange("POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", waitForClose: 5)
        XCTAssertFalse(bad.contains("413"), "bad chunking is not 'too large': \(bad)")
        // A body that ends before its declared length is named as such, not as too large.
        let (cut, _) = try rawExchange("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"rows\": [", waitForClose: 5,
                                       halfClose: true)
        XCTAssertTrue(cut.hasPrefix("HTTP/1.1 400") && cut.contains("incomplete"), cut)
    }

    func testReloadPolicy() async throws {
        // Outside the model root: refused, whatever the path spelling.
        var (status, data) = try await call("/v1/reload", method: "POST", body: Data("{\"model\": \"\(ServeTests.dir)/../../etc\"}".utf8))
        XCTAssertEqual(status, 403, String(decoding: data, as: UTF8.self))
        (status, data) = try await call("/v1/reload", method: "POST", body: Data("{\"model\": [[1]]}".utf8))
        XCTAssertEqual(status, 400)
        (status, data) = try await call("/v1/reload", method: "POST", body: Data("{\"model\": \"x\", \"other\": 1}".utf8))
        XCTAssertEqual(status, 400)
        var policy = ReloadPolicy()
        XCTAssertThrowsError(try policy.authorize(nil)) { XCTAssertTrue("\($0)".contains("disabled")) }
        policy.allowHTTP = true
        policy.adminToken = "s3cret"
        XCTAssertThrowsError(try policy.authorize("Bearer nope"))
        XCTAssertNoThrow(try policy.authorize("Bearer s3cret"))
        XCTAssertThrowsError(try policy.resolve("/tmp/x", current: "/m"), "no root: only the current directory")
        XCTAssertEqual(try policy.resolve(nil, current: "/m"), "/m")
        let link = ServeTests.dir + "/escape"
        try? FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc")
        policy.modelRoot = ServeTests.dir
        XCTAssertThrowsError(try policy.resolve(link, current: "/m"), "a symlink out of the root")
        XCTAssertNoThrow(try policy.resolve(ServeTests.otherModelDir, current: "/m"))
        // Another kind or other input columns: refused unless schema changes are allowed.
        policy.allowSchemaChange = false
        let current = try ServedModel(path: ServeTests.modelDir, workers: 1, maxRowsPerRequest: 10, rejectUnknownFields: false)
        let same = try ServedModel(path: ServeTests.otherModelDir, workers: 1, maxRowsPerRequest: 10, rejectUnknownFields: false)
        XCTAssertThrowsError(try policy.check(same, against: current), "ipsp on the same columns is another kind") {
            XCTAssertTrue("\($0)".contains("is a ipsp model, the serving one a esmm model"), "\($0)")
        }
        // A reload exposed beyond this machine needs a token, checked when the server starts.
        var exposed = ServeConfiguration(modelPath: ServeTests.modelDir)
        exposed.host = "0.0.0.0"
        exposed.reload.allowHTTP = true
        XCTAssertThrowsError(try FunnelServer(configuration: exposed)) { XCTAssertTrue("\($0)".contains("--admin-token"), "\($0)") }
        exposed.reload.adminToken = "t"
        XCTAssertNoThrow(try FunnelServer(configuration: exposed))
        XCTAssertTrue(ReloadPolicy.isLoopback("[::1]") && ReloadPolicy.isLoopback("127.0.0.2") && !ReloadPolicy.isLoopback("10.0.0.1"))
        // A model reading other columns is another schema.
        var options = ReadOptions()
        options.ignore = ["301"]
        let (schema, rows, _) = try DatasetLoader.loadForTraining(ServeTests.dir + "/train.csv", options: options, minCount: 1)
        var config = ModelConfig(kind: .esmm)
        config.hidden = [4]; config.embeddingDim = 2
        let net = FunnelNetwork(config: config, embeddingRows: schema.embeddingRows, fields: schema.fields.count, denseCount: schema.dense.count)
        _ = try Trainer(config: config).train(net, on: rows)
        try TrainedModel(config: config, schema: schema, network: net, training: nil).save(to: ServeTests.dir + "/narrow")
        let narrow = try ServedModel(path: ServeTests.dir + "/narrow", workers: 1, maxRowsPerRequest: 10, rejectUnknownFields: false)
        XCTAssertThrowsError(try policy.check(narrow, against: current)) { XCTAssertTrue("\($0)".contains("other input columns"), "\($0)") }
        XCTAssertEqual(FunnelServer.displayURL(host: "::1", port: 8080), "http://[::1]:8080")
        XCTAssertEqual(FunnelServer.displayURL(host: "127.0.0.1", port: 1), "http://127.0.0.1:1")
    }
}

final class RequestParserTests: XCTestCase {
    private func parse(_ s: String) throws -> [[String: JSONValue]] { try RequestParser.rows(Array(s.utf8)) }

    func testValuesOfEveryKind() throws {
        let rows = try parse(#" { "meta": {"a": [1, {"b": null}]}, "rows": [ {"i": 12, "n": -1.5e-3, "s": "x\"y\u00e9", "t": true, "z": null, "o": [1,2]}, {} ] } "#)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0]["i"], .integer(12))
        XCTAssertEqual(rows[0]["n"], .number(-0.0015, literal: "-1.5e-3"))
        XCTAssertEqual(rows[0]["s"], .string("x\"yé"))
        XCTAssertEqual(rows[0]["t"], .bool(true))
        XCTAssertEqual(rows[0]["z"], .null)
        XCTAssertEqual(rows[0]["o"], .list([.integer(1), .integer(2)]), "an array of scalars is a list (multi-valued fields)")
        XCTAssertEqual(rows[1], [:])
        XCTAssertEqual(try parse(#"{"rows": []}"#).count, 0)
    }

    func testParsedValuesAreChargedAndUnknownFieldsAreNotKept() throws {
        let many = "[" + Array(repeating: "1", count: 10_000).joined(separator: ",") + "]"
        var limits = RequestParser.Limits()
        limits.parsedBytes = 200_000
        XCTAssertThrowsError(try RequestParser.rows(Array("{\"rows\": [{\"bag\": \(many)}]}".utf8), limits: limits)) {
            XCTAssertTrue($0 is RequestParser.TooManyValues, "\($0)")
        }
        // Pairs cost more than scalars: the same budget refuses fewer of them.
        let pairs = "[" + Array(repeating: "[1,0.5]", count: 2_000).joined(separator: ",") + "]"
        XCTAssertThrowsError(try RequestParser.rows(Array("{\"rows\": [{\"bag\": \(pairs)}]}".utf8), limits: limits))
        // A field the model does not read is checked for syntax and kept as a marker only.
        limits.known = ["a"]
        let rows = try RequestParser.rows(Array("{\"rows\": [{\"a\": 1, \"junk\": \(many)}]}".utf8), limits: limits)
        XCTAssertEqual(rows[0]["a"], .integer(1))
        XCTAssertEqual(rows[0]["junk"], .other)
        XCTAssertThrowsError(try RequestParser.rows(Array("{\"rows\": [{\"a\": 1, \"junk\": [1,}]}".utf8), limits: limits))
    }

    func testMalformedBodies() {
        for body in ["", "[]", #"{"rows": [}"#, #"{"rows": [{"a": 1,}]}"#, #"{"rows": [{"a": 01x}]}"#,
                     #"{"rows": [{"a": "open}]}"#, #"{"rows": []} extra"#, #"{"other": 1}"#, #"{"rows": [{"a": tru}]}"#] {
            XCTAssertThrowsError(try parse(body), body)
        }
    }
}
