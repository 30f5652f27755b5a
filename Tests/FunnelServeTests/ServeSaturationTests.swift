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

/// Slow clients, full gates and connection caps: a server started per test with small limits.
final class ServeSaturationTests: XCTestCase {
    static var dir = ""
    static var model: String { dir + "/esmm" }
    static var firstRow = ""

    override class func setUp() {
        dir = NSTemporaryDirectory() + "funnel-saturation-\(UUID().uuidString)"
        try! TinyModels.simulate(into: dir, rows: 1000, seed: 3)
        try! TinyModels.train(.esmm, hidden: [8], on: dir, to: model)
        let lines = try! String(contentsOfFile: dir + "/test.csv", encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ","), values = lines[1].split(separator: ",")
        firstRow = "{" + zip(header, values).dropFirst(2).map { "\"\($0)\": \"\($1)\"" }.joined(separator: ", ") + "}"
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private var task: Task<Void, Error>?
    private var port = 0

    override func tearDown() async throws {
        task?.cancel()
        _ = await task?.result
    }

    private func start(_ customize: (inout ServeConfiguration) -> Void) async throws -> FunnelServer {
        var c = ServeConfiguration(modelPath: Self.model)
        c.port = 0
        c.workers = 1
        c.maxConcurrentRequests = 2
        c.bodyTimeout = 20
        c.headerTimeout = 20
        customize(&c)
        var logger = Logger(label: "funnel.serve.test")
        logger.logLevel = .critical
        let server = try FunnelServer(configuration: c, logger: logger)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        task = Task { try await server.run { continuation.yield($0) } }
        var iterator = stream.makeAsyncIterator()
        port = await iterator.next()!
        return server
    }

    /// A connected loopback socket with `bytes` sent.
    private func open(_ bytes: String = "") -> Int32 { Loopback.connect(port: port, sending: bytes) }

    /// Whether the server has neither answered nor closed `fd` (nothing to read right now).
    private func stillWaiting(_ fd: Int32) -> Bool {
        var b = [UInt8](repeating: 0, count: 16)
        return recv(fd, &b, b.count, Int32(MSG_DONTWAIT)) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    /// Reads what the server sends on `fd` until it closes or `seconds` pass.
    private func answer(_ fd: Int32, within seconds: Int) -> String {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out = [UInt8](), buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func get(_ path: String, method: String = "GET", body: Data? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)" + path)!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    /// Four uploads trickling their bodies (two per place in the gate) once held every place; a
    /// valid request is now answered while all four are still open.
    func testTricklingUploadsHoldNoPlace() async throws {
        _ = try await start { _ in }
        let slow = (0..<4).map { _ in open("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{") }
        defer { slow.forEach { close($0) } }
        let (status, body) = try await get("/v1/predict", method: "POST", body: Data("{\"rows\": [\(Self.firstRow)]}".utf8))
        XCTAssertEqual(status, 200, "\(body)")
        XCTAssertTrue(slow.allSatisfy(stillWaiting), "the valid request did not wait for the slow ones to be closed")
    }

    /// A body over the 64 KiB prefix that stalls after taking its place is cut off within the slot
    /// timeout (the connection closes), and the place is free again.
    func testABodyThatStallsInItsPlaceIsClosedAndFreesThePlace() async throws {
        let server = try await start { $0.slotTimeout = 0.5; $0.maxConcurrentRequests = 1 }
        let fd = open("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"rows\": [" + String(repeating: " ", count: 70_000))
        defer { close(fd) }
        for _ in 0..<500 where server.gate.load.active == 0 { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(server.gate.load.active, 1, "the stalled body holds the only place")
        _ = answer(fd, within: 10)  // returns when the server closes the connection
        XCTAssertFalse(stillWaiting(fd), "closed within the slot timeout, not the 20 s body timeout")
        let (status, _) = try await get("/v1/predict", method: "POST", body: Data("{\"rows\": [\(Self.firstRow)]}".utf8))
        XCTAssertEqual(status, 200)
        XCTAssertEqual(server.gate.load.active, 0)
    }

    /// /healthz stays 200 and says saturated; /readyz answers 503 while requests wait for a place.
    func testSaturationIsReportedWithoutFailingLiveness() async throws {
        let server = try await start { $0.maxConcurrentRequests = 1; $0.slotTimeout = 30 }
        var (status, health) = try await get("/healthz")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(health["saturated"] as? Bool, false)
        let readyAtStart = try await get("/readyz").0
        XCTAssertEqual(readyAtStart, 200)
        // One large body holds the only place; a second complete request waits behind it.
        let holder = open("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"rows\": [" + String(repeating: " ", count: 70_000))
        defer { close(holder) }
        // The holder first (its 70 KB may arrive after a small request would), then the waiter.
        for _ in 0..<500 where server.gate.load.active == 0 { try await Task.sleep(nanoseconds: 20_000_000) }
        let waiter = open("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"rows\": []}")
        defer { close(waiter) }
        for _ in 0..<500 where server.gate.load.waiting == 0 { try await Task.sleep(nanoseconds: 20_000_000) }
        (status, health) = try await get("/healthz")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(health["saturated"] as? Bool, true, "\(health)")
        XCTAssertEqual((health["requests"] as? [String: Any])?["waiting"] as? Int, 1, "\(health)")
        let (ready, body) = try await get("/readyz")
        XCTAssertEqual(ready, 503, "\(body)")
    }

    /// At the connection cap the server stops accepting: the extra connections wait in the
    /// backlog and are served once others close; /healthz counts them near the cap.
    func testConnectionCapHoldsNewConnectionsInTheBacklog() async throws {
        let server = try await start { $0.maxConnections = 10; $0.idleTimeout = 60 }
        var idle = (0..<9).map { _ in open() }
        for _ in 0..<500 where server.connections.current < 9 { try await Task.sleep(nanoseconds: 20_000_000) }
        let (status, health) = try await get("/healthz")  // the 10th connection
        XCTAssertEqual(status, 200)
        XCTAssertEqual((health["connections"] as? [String: Any])?["limit"] as? Int, 10, "\(health)")
        XCTAssertEqual(health["saturated"] as? Bool, true, "9 of 10 is near the cap: \(health)")
        // Now at the cap with one more idle connection; a request on an 11th waits unanswered...
        idle.append(open())
        for _ in 0..<500 where server.connections.current < 10 { try await Task.sleep(nanoseconds: 20_000_000) }
        let late = open("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertTrue(stillWaiting(late))
        XCTAssertLessThanOrEqual(server.connections.current, 10)
        // ...until connections close.
        idle.forEach { close($0) }
        XCTAssertTrue(answer(late, within: 10).hasPrefix("HTTP/1.1 200"))
        close(late)
        // The backlog drained before the test cancels the server (a connection NIO accepted but
        // the server task never took up traps in NIO when that task is cancelled abruptly; a
        // real server stops gracefully on SIGTERM instead, tested in the CLI).
        for _ in 0..<500 where server.connections.current > 1 { try await Task.sleep(nanoseconds: 20_000_000) }
    }

    /// A request waiting for a place whose task is cancelled (the server shutting down) leaves
    /// the line with CancellationError; the others keep their order and places.
    func testACancelledWaiterLeavesTheGate() async throws {
        let gate = RequestGate(limit: 1)
        try await gate.enter()
        let cancelled = Task { try await gate.enter() }
        let kept = Task { try await gate.enter() }
        for _ in 0..<500 where gate.load.waiting < 2 { try await Task.sleep(nanoseconds: 2_000_000) }
        XCTAssertEqual(gate.load.waiting, 2)
        cancelled.cancel()
        do { try await cancelled.value; XCTFail("the cancelled waiter was admitted") } catch { XCTAssertTrue(error is CancellationError, "\(error)") }
        XCTAssertEqual(gate.load.waiting, 1)
        gate.leave()
        try await kept.value
        XCTAssertEqual(gate.load.active, 1)
        gate.leave()
        XCTAssertEqual(gate.load.active, 0)
    }
}
