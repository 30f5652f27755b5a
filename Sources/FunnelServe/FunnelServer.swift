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

    /// Loads the model; a broken model directory fails here, before any port is bound.
    public init(configuration: ServeConfiguration, logger: Logger = Logger(label: "funnel.serve")) throws {
        self.configuration = configuration
        self.logger = logger
        slot = ModelSlot(try FunnelServer.load(configuration.modelPath, configuration))
    }

    static func load(_ path: String, _ c: ServeConfiguration) throws -> ServedModel {
        try ServedModel(path: path, workers: max(1, c.workers), maxRowsPerRequest: c.maxRowsPerRequest,
                        rejectUnknownFields: c.rejectUnknownFields)
    }

    /// Loads `path` (default: the current model's) and swaps it in. On failure the old model keeps
    /// serving and the reason is logged and returned.
    @discardableResult
    public func reload(path: String? = nil) -> Result<ServedModel, Error> {
        let target = path ?? slot.current.path
        do {
            let m = try FunnelServer.load(target, configuration)
            slot.replace(with: m)
            metrics.count("funnel_model_reloads_total", [("result", "ok")], help: "Model reloads by result")
            logger.info("reloaded model", metadata: ["path": .string(target)])
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
        let rows: [[String: JSONValue]]
        do {
            rows = try RequestParser.rows(body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? [])
        } catch let e as RequestParser.Malformed {
            return (FunnelServer.error(RequestError("body must be a JSON object {\"rows\": [{field: value, …}, …]}: \(e.what) at byte \(e.offset)")), 0)
        } catch {
            return (FunnelServer.error(RequestError("body must be a JSON object {\"rows\": [{field: value, …}, …]}")), 0)
        }
        guard rows.count <= configuration.maxRowsPerRequest else {
            return (FunnelServer.error(RequestError("\(rows.count) rows exceed the limit of \(configuration.maxRowsPerRequest) per request",
                                                    status: 413)), rows.count)
        }
        var w = CSVWriter()
        w.append("{\"predictions\":")
        let count: Int
        do { count = try await model.predict(rows, into: &w) } catch let e as RequestError {
            return (FunnelServer.error(e), rows.count)
        } catch {
            return (FunnelServer.error(RequestError("\(error)")), rows.count)
        }
        w.append(",\"model\":")
        w.append(model.summaryJSON)
        w.append("}")
        return (Response(status: .ok, headers: [.contentType: "application/json"],
                         body: ResponseBody(byteBuffer: ByteBuffer(bytes: w.bytes))), count)
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let metrics = self.metrics
        let limit = configuration.maxBodyBytes
        router.post("v1/predict") { request, _ -> Response in
            let start = ContinuousClock.now
            var request = request
            let response: Response
            var rows = 0
            do {
                let body = try await request.collectBody(upTo: limit)
                (response, rows) = await self.predict(body: body)
            } catch {
                response = FunnelServer.error(RequestError("request body exceeds \(limit) bytes", status: 413))
            }
            metrics.latency.record(ContinuousClock.now - start)
            metrics.rowsPerRequest.record(Double(rows))
            metrics.request(path: "/v1/predict", status: Int(response.status.code))
            return response
        }
        router.get("healthz") { _, _ -> Response in
            metrics.request(path: "/healthz", status: 200)
            return FunnelServer.json(["status": "ok"])
        }
        router.get("v1/model") { _, _ -> Response in
            metrics.request(path: "/v1/model", status: 200)
            return FunnelServer.json(self.slot.current.metadata)
        }
        router.get("metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
        router.post("v1/reload") { request, _ -> Response in
            var request = request
            var path: String?
            if let body = try? await request.collectBody(upTo: 64 << 10), body.readableBytes > 0 {
                struct Body: Decodable { var model: String? }
                guard let b = try? JSONDecoder().decode(Body.self, from: Data(buffer: body)) else {
                    metrics.request(path: "/v1/reload", status: 400)
                    return FunnelServer.error(RequestError("body must be empty or {\"model\": \"DIR\"}"))
                }
                path = b.model
            }
            switch self.reload(path: path) {
            case .success(let m):
                metrics.request(path: "/v1/reload", status: 200)
                return FunnelServer.json(["reloaded": true, "model": m.metadata])
            case .failure(let e):
                metrics.request(path: "/v1/reload", status: 422)
                return FunnelServer.json(["reloaded": false, "error": "\(e)", "serving": self.slot.current.path],
                                         status: .unprocessableContent)
            }
        }
        return router
    }

    /// Runs until cancelled (or SIGTERM/SIGINT); `onListening` receives the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "funnel"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? -1) },
            logger: logger)
        try await app.runService()
    }
}
