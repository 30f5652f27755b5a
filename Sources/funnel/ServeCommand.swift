import ArgumentParser
import Foundation
import Funnel
import FunnelServe
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP: POST /v1/predict, GET /healthz, GET /v1/model, GET /metrics, POST /v1/reload.",
        discussion: """
            /v1/predict takes {"rows": [{"101": 123, "D109_14": 0.3, …}, …]} with raw values as in the training \
            CSV and answers {"predictions": [{"pctr": …, "pcvr": …, "pctcvr": …}, …], "model": {…}}, using the \
            model's stored schema, vocabularies and normalisation. POST /v1/reload (optionally {"model": "DIR"}) \
            or SIGHUP loads a model directory; a broken one is refused and the old model keeps serving.
            """)

    @Option(help: "Model directory.") var model: String
    @Option(help: "Address to bind (default loopback only).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port).") var port = 8080
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 8 << 20
    @Option(help: "Most rows per request.") var maxRows = 10_000
    @Flag(help: "Reject rows with fields the model does not know (default: ignore them).") var rejectUnknownFields = false
    @Option(help: "Concurrent prediction slots (default: all cores).") var threads: Int?

    func validate() throws {
        guard maxRows >= 1 else { throw ValidationError("--max-rows must be ≥ 1") }
        guard maxBodyBytes >= 1 else { throw ValidationError("--max-body-bytes must be ≥ 1") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0…65535") }
        try validateThreads(threads)
    }

    func run() async throws {
        var c = ServeConfiguration(modelPath: model)
        c.host = host; c.port = port; c.maxBodyBytes = maxBodyBytes; c.maxRowsPerRequest = maxRows
        c.rejectUnknownFields = rejectUnknownFields
        c.workers = try resolveThreads(threads)
        BLAS.setThreads(1)
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
        let host = self.host
        try await server.run { port in
            Terminal.note("serving \(server.slot.current.path) on http://\(host):\(port)")
        }
        hup.cancel()
    }
}
