import Foundation
import Funnel
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// Settings of `funnel serve`.
public struct ServeConfiguration: Sendable {
    public var modelPath: String
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port = 8080
    public var maxBodyBytes = 8 << 20
    public var maxRowsPerRequest = 10_000
    public var rejectUnknownFields = false
    /// Concurrent prediction slots (default: cores).
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// Predict requests that may read and parse a body at the same time; others wait their turn
    /// (their bytes stay in the kernel's socket buffers). With the body and row limits this
    /// bounds the memory requests can hold.
    public var maxConcurrentRequests = 2 * ProcessInfo.processInfo.activeProcessorCount
    /// Seconds the rest of a body longer than `BodyReader.prefixBytes` may take after its first
    /// 64 KiB (when a predict request takes its place in the gate); then the connection closes.
    public var slotTimeout = 2.0
    /// The estimated memory one request's parsed rows may take (`RequestParser.Limits`).
    public var maxParsedBytes = 40 << 20
    /// Seconds a connection may take to deliver a complete request head (from opening, or from
    /// its previous response), a request body (from its head), and stay idle between requests.
    /// Before a head completes the shorter of the header and idle timeouts applies.
    public var headerTimeout = 30.0
    public var bodyTimeout = 30.0
    public var idleTimeout = 60.0
    /// Open connections at most; at the cap new ones wait in the kernel's backlog
    /// (`ConnectionCounter.defaultLimit`: the descriptor limit less headroom).
    public var maxConnections = ConnectionCounter.defaultLimit
    /// How served networks' GEMMs run; row buckets on: requests of every size share a few
    /// cached oneDNN primitives per layer shape (rows unchanged).
    public var gemm = GEMMSettings(bucketRowCounts: true)
    /// Who may reload the model over HTTP (off by default).
    public var reload = ReloadPolicy()

    public init(modelPath: String) { self.modelPath = modelPath }
}

/// The request log the server keeps for `/metrics`, in Prometheus text format.
final class ServeMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
    private var counters: [String: Counter] = [:]
    let latency: DurationHistogram
    let rowsPerRequest: ValueHistogram

    init() {
        latency = registry.makeDurationHistogram(
            descriptor: Self.descriptor("funnel_request_duration_seconds", help: "Latency of /v1/predict requests"),
            buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                      .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .milliseconds(500), .seconds(1), .seconds(5)])
        rowsPerRequest = registry.makeValueHistogram(
            descriptor: Self.descriptor("funnel_rows_per_request", help: "Rows per /v1/predict request"),
            buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000])
    }

    /// swift-prometheus names a metric from parts (`metricName_unitName`); the last underscore
    /// separates them, so the exposed names stay exactly these strings.
    static func descriptor(_ name: String, help: String) -> MetricNameDescriptor {
        let cut = name.lastIndex(of: "_")!
        return MetricNameDescriptor(metricName: String(name[..<cut]), unitName: String(name[name.index(after: cut)...]),
                                    helpText: help)
    }

    func count(_ name: String, _ labels: [(String, String)], help: String) {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        lock.lock()
        let c: Counter
        if let existing = counters[key] { c = existing } else {
            c = registry.makeCounter(descriptor: Self.descriptor(name, help: help), labels: labels)
            counters[key] = c
        }
        lock.unlock()
        c.increment()
    }

    func request(path: String, status: Int) {
        count("funnel_requests_total", [("path", path), ("status", String(status))], help: "HTTP requests by path and status")
        if status >= 400 { count("funnel_request_errors_total", [("path", path)], help: "Requests answered with an error status") }
    }
}

/// Holds the model being served and swaps it on reload.
public final class ModelSlot: @unchecked Sendable {
    private let lock = NSLock()
    private var model: ServedModel

    init(_ model: ServedModel) { self.model = model }

    public var current: ServedModel {
        lock.lock(); defer { lock.unlock() }
        return model
    }

    func replace(with m: ServedModel) {
        lock.lock(); model = m; lock.unlock()
    }
}

/// `funnel serve`: POST /v1/predict, GET /healthz, GET /v1/model, GET /metrics, POST /v1/reload.
public final class FunnelServer: @unchecked Sendable {
    public let configuration: ServeConfiguration
    public let slot: ModelSlot
    let metrics = ServeMetrics()
    let logger: Logger
    /// Bounds the predict requests reading or parsing a body at once, and so the memory they hold.
    let gate: RequestGate
    let connections: ConnectionCounter
    /// One reload at a time (HTTP or SIGHUP): concurrent ones queue instead of each loading a
    /// model at once, and each checks against the model the previous one left.
    private let reloadLock = NSLock()

    /// Loads the model; a broken model directory fails here, before any port is bound.
    public init(configuration: ServeConfiguration, logger: Logger = Logger(label: "funnel.serve")) throws {
        try configuration.reload.checkExposure(host: configuration.host)
        self.configuration = configuration
        self.logger = logger
        gate = RequestGate(limit: max(1, configuration.maxConcurrentRequests))
        connections = ConnectionCounter(limit: max(1, configuration.maxConnections))
        slot = ModelSlot(try FunnelServer.load(configuration.modelPath, configuration))
    }

    static func load(_ path: String, _ c: ServeConfiguration) throws -> ServedModel {
        try ServedModel(path: path, workers: max(1, c.workers), maxRowsPerRequest: c.maxRowsPerRequest,
                        rejectUnknownFields: c.rejectUnknownFields, gemm: c.gemm)
    }

    /// Loads `path` (default: the current model's) and swaps it in. On failure the old model keeps
    /// serving and the reason is logged and returned.
    @discardableResult
    public func reload(path: String? = nil, checked: Bool = false) -> Result<ServedModel, Error> {
        let target = path ?? slot.current.path
        return swapIn(path: target, checked: checked) { try FunnelServer.load(target, self.configuration) }
    }

    /// Builds a model (`make`) and swaps it in, one reload at a time; on failure the old model
    /// keeps serving and the reason is logged and returned.
    func swapIn(path target: String, checked: Bool = false, by how: String = "full load", _ make: () throws -> ServedModel) -> Result<ServedModel, Error> {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        do {
            let m = try make()
            if checked { try configuration.reload.check(m, against: slot.current) }
            slot.replace(with: m)
            metrics.count("funnel_model_reloads_total", [("result", "ok")], help: "Model reloads by result")
            logger.info("reloaded model", metadata: ["path": .string(target), "by": .string(how)])
            return .success(m)
        } catch {
            metrics.count("funnel_model_reloads_total", [("result", "refused")], help: "Model reloads by result")
            logger.error("reload refused; still serving the previous model", metadata: ["path": .string(target), "reason": .string("\(error)")])
            return .failure(error)
        }
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ e: RequestError) -> Response {
        var body: [String: Any] = ["error": e.message]
        if let r = e.row { body["row"] = r }
        if let f = e.field { body["field"] = f }
        return json(body, status: HTTPResponse.Status(code: e.status))
    }

    /// Answers one predict request body (also used by tests without HTTP).
    func predict(body: ByteBuffer) async -> (Response, rows: Int) {
        let model = slot.current  // this request finishes on this model even if a reload lands meanwhile
        let parsed: RequestParser.Body
        var limits = RequestParser.Limits(rows: configuration.maxRowsPerRequest, fieldsPerRow: model.maxFieldsPerRow)
        limits.parsedBytes = configuration.maxParsedBytes
        limits.known = model.knownFields
        do {
            parsed = try RequestParser.body(body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? [], limits: limits)
        } catch let e as RequestParser.TooManyRows {
            return (FunnelServer.error(RequestError("more than \(e.limit) rows: the limit per request", status: 413)), 0)
        } catch let e as RequestParser.TooManyValues {
            return (FunnelServer.error(RequestError(
                "the request's values would take more than \(e.limit >> 20) MiB once parsed (arrays and bags count per element): "
                + "send fewer values per request", status: 413)), 0)
        } catch let e as RequestParser.Malformed {
            return (FunnelServer.error(RequestError("body must be a JSON object {\"rows\": [{field: value, …}, …]}: \(e.what) at byte \(e.offset)")), 0)
        } catch {
            return (FunnelServer.error(RequestError("body must be a JSON object {\"rows\": [{field: value, …}, …]}")), 0)
        }
        var w = CSVWriter()
        w.append("{\"predictions\":")
        let count: Int
        do { count = try await model.predict(parsed.rows, request: parsed.request, into: &w) } catch let e as RequestError {
            return (FunnelServer.error(e), parsed.rows.count)
        } catch {
            return (FunnelServer.error(RequestError("\(error)")), parsed.rows.count)
        }
        w.append(",\"model\":")
        w.append(model.summaryJSON)
        w.append("}")
        return (Response(status: .ok, headers: [.contentType: "application/json"],
                         body: ResponseBody(byteBuffer: ByteBuffer(bytes: w.bytes))), count)
    }

    /// Reads a predict request's body within the limits and answers it. A declared body over
    /// the limit is refused before any of it is read; a body that grows past it, or ends before
    /// its declared length, or has malformed chunking, gets its own precise error. Errors that
    /// leave unread bytes on the connection close it (`Connection: close`, `LingeringClose`).
    ///
    /// The first `BodyReader.prefixBytes` of a body are read before the request takes a place in
    /// the gate, so a client trickling its bytes holds no place (its connection is closed by the
    /// body timeout); a body longer than that takes its place for the rest, which must arrive
    /// within `slotTimeout` of the prefix or the connection is closed (`BodyTimeoutHandler`) and
    /// the place freed. Memory stays bounded: prefixes by the connection cap, whole bodies by the
    /// gate.
    func predict(request: Request) async -> (Response, rows: Int) {
        let limit = configuration.maxBodyBytes
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            return (FunnelServer.closing(FunnelServer.error(RequestError(
                "request body of \(declared) bytes exceeds the limit of \(limit) bytes", status: 413))), 0)
        }
        var reader = BodyReader(request.body, limit: limit)
        var held = false
        defer { if held { gate.leave() } }
        do {
            try await reader.readPrefix()
            try await gate.enter()
            held = true
            if !reader.complete { try await reader.readRest() }
        } catch is BodyReader.TooLarge {
            return (FunnelServer.closing(FunnelServer.error(RequestError("request body exceeds the limit of \(limit) bytes", status: 413))), 0)
        } catch is CancellationError {
            return (FunnelServer.closing(FunnelServer.error(RequestError("the server is shutting down", status: 503))), 0)
        } catch {
            return (FunnelServer.closing(FunnelServer.error(RequestError(
                "request body incomplete or malformed (it ended before its declared length, or its chunked encoding is invalid)",
                status: 400))), 0)
        }
        return await predict(body: reader.body)
    }

    /// How full the server is: the gate (places held, requests waiting), open connections and the
    /// cap. Saturated: requests are waiting for a place, or connections are at 90% of the cap.
    /// `/healthz` reports it and stays 200 (the process is alive); `/readyz` answers 503 then, so
    /// a balancer sends traffic elsewhere.
    var load: [String: Any] {
        let g = gate.load, open = connections.current, cap = connections.limit
        let saturated = g.waiting > 0 || open * 10 >= cap * 9
        return ["saturated": saturated,
                "requests": ["active": g.active, "waiting": g.waiting, "limit": g.limit],
                "connections": ["open": open, "limit": cap]]
    }

    static func closing(_ response: Response) -> Response {
        var r = response
        r.headers[.connection] = "close"
        return r
    }

    /// The routes and the methods each allows; any other method on them is a 405 with `Allow`,
    /// and HEAD answers wherever GET does.
    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("v1/predict", [.post]), ("healthz", [.get, .head]), ("readyz", [.get, .head]), ("v1/model", [.get, .head]),
        ("metrics", [.get, .head]),
        ("v1/reload", [.post]),
    ]

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let metrics = self.metrics
        router.post("v1/predict") { request, _ -> Response in
            let start = ContinuousClock.now
            let (response, rows) = await self.predict(request: request)
            metrics.latency.record(ContinuousClock.now - start)
            metrics.rowsPerRequest.record(Double(rows))
            metrics.request(path: "/v1/predict", status: Int(response.status.code))
            return response
        }
        let healthz: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            metrics.request(path: "/healthz", status: 200)
            return FunnelServer.json(self.load.merging(["status": "ok"]) { $1 })
        }
        let readyz: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            let load = self.load
            let ready = load["saturated"] as? Bool != true
            metrics.request(path: "/readyz", status: ready ? 200 : 503)
            return FunnelServer.json(load.merging(["status": ready ? "ready" : "saturated"]) { $1 },
                                     status: ready ? .ok : .serviceUnavailable)
        }
        let model: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            metrics.request(path: "/v1/model", status: 200)
            return FunnelServer.json(self.slot.current.metadata)
        }
        let exposition: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
        for (path, handler) in [("healthz", healthz), ("readyz", readyz), ("v1/model", model), ("metrics", exposition)] {
            router.get(RouterPath(path), use: handler)
            router.head(RouterPath(path)) { request, context in
                let full = try await handler(request, context)
                return Response(status: full.status, headers: full.headers)
            }
        }
        router.post("v1/reload") { request, _ -> Response in
            let response = await self.reload(request: request)
            metrics.request(path: "/v1/reload", status: Int(response.status.code))
            return response
        }
        let all: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options]
        for (path, allowed) in FunnelServer.routes {
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            for method in all where !allowed.contains(method) {
                router.on(RouterPath(path), method: method) { _, _ -> Response in
                    metrics.request(path: "/" + path, status: 405)
                    var r = FunnelServer.error(RequestError("method not allowed; allowed: \(allow)", status: 405))
                    r.headers[.allow] = allow
                    return r
                }
            }
        }
        return router
    }

    /// POST /v1/reload: `{"model": "DIR"}` or an empty body (reload the current directory),
    /// under `ServeConfiguration.reload`'s policy.
    func reload(request: Request) async -> Response {
        let policy = configuration.reload
        do { try policy.authorize(request.headers[.authorization]) } catch let e as ReloadPolicy.Refusal {
            return FunnelServer.error(RequestError(e.description, status: e.status))
        } catch {
            return FunnelServer.error(RequestError("\(error)", status: 403))
        }
        var request = request
        var path: String?
        do {
            let body = try await request.collectBody(upTo: 64 << 10)
            if body.readableBytes > 0 {
                guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                      Set(object.keys).isSubset(of: ["model"]), object["model"] == nil || object["model"] is String else {
                    return FunnelServer.error(RequestError("body must be empty or {\"model\": \"DIR\"}"))
                }
                path = object["model"] as? String
            }
        } catch {
            return FunnelServer.closing(FunnelServer.error(RequestError("reload body must be at most 64 KiB of JSON", status: 413)))
        }
        let target: String
        do { target = try policy.resolve(path, current: slot.current.path) } catch let e as ReloadPolicy.Refusal {
            return FunnelServer.error(RequestError(e.description, status: e.status))
        } catch {
            return FunnelServer.error(RequestError("\(error)", status: 403))
        }
        // Loading is seconds of blocking work: on a Dispatch thread, never on the threads that
        // answer predictions (three reloaders at once had cut them from ~2,000 to 30 req/s).
        let result = await withCheckedContinuation { (c: CheckedContinuation<Result<ServedModel, Error>, Never>) in
            DispatchQueue.global(qos: .utility).async { c.resume(returning: self.reload(path: target, checked: true)) }
        }
        switch result {
        case .success(let m):
            return FunnelServer.json(["reloaded": true, "model": m.metadata])
        case .failure(let e as ReloadPolicy.Refusal):
            return FunnelServer.json(["reloaded": false, "error": e.description, "serving": self.slot.current.path],
                                     status: HTTPResponse.Status(code: e.status))
        case .failure(let e):
            return FunnelServer.json(["reloaded": false, "error": "\(e)", "serving": self.slot.current.path],
                                     status: .unprocessableContent)
        }
    }

    /// The server's URL as a user types it: an IPv6 literal goes in brackets.
    public static func displayURL(host: String, port: Int) -> String {
        "http://" + (host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host) + ":\(port)"
    }

    /// Runs until cancelled (or SIGTERM/SIGINT); `onListening` receives the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let idle = TimeAmount.milliseconds(Int64(min(configuration.headerTimeout, configuration.idleTimeout) * 1000))
        let body = TimeAmount.milliseconds(Int64(configuration.bodyTimeout * 1000))
        let rest = TimeAmount.milliseconds(Int64(configuration.slotTimeout * 1000))
        let app = Application(
            router: router(),
            server: .http1(configuration: .init(additionalChannelHandlers: [BodyTimeoutHandler(timeout: body, restTimeout: rest, prefixBytes: BodyReader.prefixBytes),
                                                                                    LingeringCloseHandler()],
                                                idleTimeout: idle)),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "funnel",
                                 availableConnectionsDelegate: ConnectionCap(counter: connections)),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? -1) },
            logger: logger)
        let connections = self.connections
        try await withTaskCancellationHandler {
            try await app.runService()
        } onCancel: {
            connections.stop()
        }
    }
}
