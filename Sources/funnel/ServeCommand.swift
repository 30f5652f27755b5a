import ArgumentParser
import Foundation
import Funnel
import FunnelServe
import Logging
import NIOCore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP: POST /v1/predict, GET /healthz, GET /v1/model, GET /metrics, POST /v1/reload.",
        discussion: """
            /v1/predict takes {"rows": [{"101": 123, "D109_14": 0.3, …}, …]} with raw values as in the training \
            CSV and answers {"predictions": [{"pctr": …, "pcvr": …, "pctcvr": …}, …], "model": {…}}, using the \
            model's stored schema, vocabularies and normalisation. POST /v1/reload (optionally {"model": "DIR"}) \
            or SIGHUP loads a model directory; a broken one is refused and the old model keeps serving.
            """)

    @Option(help: "Model directory (with --watch: the newest version under ROOT).") var model: String?
    @Option(help: "Serve the newest model version under this directory (its subdirectories in name order) and move to each newer one as it appears, by its delta/ when made from the served model.")
    var watch: String?
    @Option(parsing: .unconditional, help: "Seconds between two looks at --watch.") var watchInterval = 1.0
    @Option(help: "Address to bind (default loopback only).") var host = "127.0.0.1"
    @Option(parsing: .unconditional, help: "Port (0: any free port).") var port = 8080
    @Option(parsing: .unconditional, help: "Largest request body in bytes.") var maxBodyBytes = 8 << 20
    @Option(parsing: .unconditional, help: "Most rows per request.") var maxRows = 10_000
    @Flag(help: "Reject rows with fields the model does not know (default: ignore them).") var rejectUnknownFields = false
    @Option(parsing: .unconditional, help: "Concurrent prediction slots (default: all cores).") var threads: Int?
    @OptionGroup var gemmOptions: GEMMOptions
    @Option(help: "Predict requests reading or parsing a body at once; more wait (default: 2 × cores).")
    var maxConcurrentRequests: Int?
    @Option(parsing: .unconditional, help: "Seconds to deliver a complete request head.") var headerTimeout = 30.0
    @Option(parsing: .unconditional, help: "Seconds to deliver a request body after its head.") var bodyTimeout = 30.0
    @Option(parsing: .unconditional, help: "Seconds the rest of a body longer than 64 KiB may take after its first 64 KiB, while the request holds its place in the gate (then the connection closes).")
    var slotTimeout = 2.0
    @Option(parsing: .unconditional, help: "Open connections at most; more wait in the kernel's backlog (default: the descriptor limit less 64, at most 16384).")
    var maxConnections: Int?
    @Option(parsing: .unconditional, help: "Seconds a connection may stay idle between requests.") var idleTimeout = 60.0
    @Flag(help: "Allow POST /v1/reload (SIGHUP always reloads the current directory).") var allowReload = false
    @Option(help: "With --allow-reload: directories under this one may be loaded (default: only the current model directory).")
    var modelRoot: String?
    @Flag(help: "With --allow-reload: allow a model of another kind or other input columns.") var allowSchemaChange = false
    @Option(help: "With --allow-reload: require 'Authorization: Bearer TOKEN' (prefer --admin-token-file).") var adminToken: String?
    @Option(help: "With --allow-reload: read the admin token from this file.") var adminTokenFile: String?

    func validate() throws {
        try refuseManyRanks("serve")
        if let m = maxConnections { guard (1...1_000_000).contains(m) else { throw ValidationError("--max-connections must be between 1 and 1000000") } }
        for (flag, v) in [("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout), ("--idle-timeout", idleTimeout),
                          ("--slot-timeout", slotTimeout)] {
            guard v > 0, v <= 86_400 else { throw ValidationError("\(flag) must be between 0 and 86400 seconds") }
        }
        if let m = maxConcurrentRequests { guard (1...4096).contains(m) else { throw ValidationError("--max-concurrent-requests must be between 1 and 4096") } }
        guard allowReload || (modelRoot == nil && !allowSchemaChange && adminToken == nil && adminTokenFile == nil) else {
            throw ValidationError("--model-root, --allow-schema-change and the admin token need --allow-reload")
        }
        guard adminToken == nil || adminTokenFile == nil else { throw ValidationError("give --admin-token or --admin-token-file, not both") }
        guard maxRows >= 1 else { throw ValidationError("--max-rows must be ≥ 1") }
        guard maxBodyBytes >= 1 else { throw ValidationError("--max-body-bytes must be ≥ 1") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0…65535") }
        try validateThreads(threads)
        guard (model == nil) != (watch == nil) else { throw ValidationError("give --model DIR or --watch ROOT") }
        guard watchInterval > 0, watchInterval <= 3600 else { throw ValidationError("--watch-interval must be between 0 and 3600 seconds") }
    }

    func run() async throws {
        let modelPath: String
        do { modelPath = try model ?? VersionWatcher.newestFull(in: watch!) } catch {
            Terminal.error("\(error)")
            throw ExitCode(1)
        }
        var c = ServeConfiguration(modelPath: modelPath)
        c.host = host; c.port = port; c.maxBodyBytes = maxBodyBytes; c.maxRowsPerRequest = maxRows
        c.rejectUnknownFields = rejectUnknownFields
        c.workers = try resolveThreads(threads)
        c.maxConcurrentRequests = maxConcurrentRequests ?? 2 * c.workers
        (c.headerTimeout, c.bodyTimeout, c.idleTimeout) = (headerTimeout, bodyTimeout, idleTimeout)
        c.slotTimeout = slotTimeout
        if let maxConnections { c.maxConnections = maxConnections }
        c.reload.allowHTTP = allowReload
        c.reload.modelRoot = modelRoot
        c.reload.allowSchemaChange = allowSchemaChange
        c.reload.adminToken = adminToken
        if let file = adminTokenFile {
            guard let text = FileManager.default.contents(atPath: file).map({ String(decoding: $0, as: UTF8.self) }),
                  case let token = text.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else {
                Terminal.error("\(file): cannot read an admin token (a file with one non-empty line)")
                throw ExitCode(1)
            }
            c.reload.adminToken = token
        }
        BLAS.setThreads(1)
        c.gemm = gemmOptions.settings
        c.gemm.bucketRowCounts = true
        let server: FunnelServer
        do {
            server = try FunnelServer(configuration: c)
        } catch {
            Terminal.error("\(error)")
            throw ExitCode(1)
        }
        // SIGHUP reloads the model directory in place.
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler { server.reload() }
        hup.resume()
        let watcher = watch.map { VersionWatcher(root: $0, server: server) }
        watcher?.start(interval: watchInterval)
        defer { watcher?.stop() }
        let host = self.host
        do {
            try await server.run { port in
                Terminal.note("serving \(server.slot.current.path) on \(FunnelServer.displayURL(host: host, port: port))")
            }
        } catch let e as IOError {
            Terminal.error("cannot listen on \(host.contains(":") ? "[\(host)]" : host):\(port): \(String(cString: strerror(e.errnoCode)).lowercased())")
            throw ExitCode(1)
        }
        hup.cancel()
    }
}
