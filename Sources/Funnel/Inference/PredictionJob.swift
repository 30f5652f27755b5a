import Foundation

/// What `funnel predict` asks for.
public struct PredictionRequest: Sendable {
    public var model: String
    public var data: String
    public var out: String
    public var threads = 1
    public var read = ReadOptions()
    /// Replace a non-regular file at `out` (a device, FIFO or symbolic link).
    public var force = false
    /// How the network's GEMMs run (`--gemm`, `--precision`).
    public var gemm = GEMMSettings.standard
    /// Refuse, before reading rows, a read that would hold more than this many MiB (`ReadingBudget`).
    public var memoryBudgetMiB: Double?
    /// Compute each request's part once where the rows carry requests (`RequestSharing`);
    /// false: every row on its own (`--no-request-sharing`).
    public var requestSharing = true
    /// Under mpirun: the ranks that share the work (`DistributedInference`); rank 0 writes `out`.
    public var communicator = Communicator.single

    public init(model: String, data: String, out: String) {
        self.model = model
        self.data = data
        self.out = out
    }
}

/// What a prediction run did (`funnel predict`, `funnel gbdt predict`).
public struct PredictionOutcome: Sendable {
    public var rows: Int
    /// The model evaluation only (forward passes), after the data is read and encoded.
    public var seconds: Double
    public var skippedRows: Int
    public var notes: [String]
    public var rowsPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
}

/// `funnel predict` as one library call: loads the model directory, reads the file with its
/// schema (no row is dropped for its labels), predicts every row and writes
/// `pctr,pcvr,pctcvr` in input order, atomically — or to standard output when `out` is "-". A
/// quantity the model does not predict (ESP has no pCTR) is an empty cell.
public enum PredictionJob {
    public static func run(_ r: PredictionRequest) throws -> PredictionOutcome {
        if r.out != "-" { try OutputPath.checkFile(r.out, force: r.force) }  // before any work
        BLAS.setThreads(1)
        var options = r.read
        options.inconsistent = .keep  // prediction never drops a row for its labels
        if r.communicator.isDistributed { return try DistributedInference.predict(r, options: options) }
        let trained = try TrainedModel.load(from: r.model, maxBatch: TrainedModel.predictionBatch, workers: r.threads)
        trained.network.gemm = r.gemm
        if ColumnarCache.isCache(r.data) { return try streamed(r, trained, options: options) }
        if let budget = r.memoryBudgetMiB { try ReadingBudget.checkWhole(budget, path: r.data, command: "predict") }
        let (encoded, report) = try DatasetLoader.load(r.data, schema: trained.schema, options: options, requireLabels: false)
        if r.requestSharing { trained.network.shareRequests(as: encoded) }
        trained.network.warmUp(encoded)  // kernel creation stays outside the timed forward passes
        let start = Date()
        let p = trained.network.predict(encoded)
        let seconds = Date().timeIntervalSince(start)
        if r.out == "-" { try StandardStreams.write(csv(p).data) } else { try AtomicFile.write(csv(p).data, to: r.out, force: r.force) }
        return PredictionOutcome(rows: encoded.rowCount, seconds: seconds, skippedRows: report.skippedTotal, notes: report.notes)
    }

    /// A prepared cache, one row group at a time: decoded, encoded, predicted and written before
    /// the next is read (its pages handed back), so memory holds the model and one group —
    /// whatever the cache's size. The rows and their order are those of the whole-table read.
    static func streamed(_ r: PredictionRequest, _ trained: TrainedModel, options: ReadOptions) throws -> PredictionOutcome {
        let cache = try ColumnarCache(path: r.data)
        if let budget = r.memoryBudgetMiB { try ReadingBudget.check(budget, cache: cache, keptPerRow: 0, command: "predict") }
        let stream = r.out == "-" ? nil : try AtomicFile.Stream(r.out, force: r.force)
        func emit(_ w: CSVWriter) throws {
            if let stream { try w.data.withUnsafeBytes { try stream.write($0) } } else { try StandardStreams.write(w.data) }
        }
        try emit(csv(Predictions(count: 0)))  // the header
        var rows = 0, seconds = 0.0
        let report = try DatasetLoader.forEachGroup(of: cache, schema: trained.schema, options: options, requireLabels: false,
                                                    requestLevel: r.requestSharing) { encoded in
            if r.requestSharing { trained.network.shareRequests(as: encoded) }
            if rows == 0 { trained.network.warmUp(encoded) }
            let start = Date()
            let p = trained.network.predict(encoded)
            seconds += Date().timeIntervalSince(start)
            try emit(csv(p, header: false))
            rows += encoded.rowCount
        }
        try stream?.finish()
        return PredictionOutcome(rows: rows, seconds: seconds, skippedRows: report.skippedTotal, notes: report.notes)
    }

    /// The predictions file: a header and one `pctr,pcvr,pctcvr` line per row (Float's shortest
    /// round-trip text, as the server writes).
    public static func csv(_ p: Predictions, header: Bool = true) -> CSVWriter {
        var w = CSVWriter()
        if header { w.append("pctr,pcvr,pctcvr\n") }
        func cell(_ v: Float) { if !v.isNaN { w.appendFloat(v) } }
        for i in 0..<p.ctr.count {
            cell(p.ctr[i]); w.comma()
            cell(p.cvr[i]); w.comma()
            cell(p.ctcvr[i]); w.newline()
        }
        return w
    }
}
