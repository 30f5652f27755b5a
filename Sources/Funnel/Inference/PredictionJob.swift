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
        let trained = try TrainedModel.load(from: r.model, maxBatch: TrainedModel.predictionBatch, workers: r.threads)
        trained.network.gemm = r.gemm
        let (encoded, report) = try DatasetLoader.load(r.data, schema: trained.schema, options: options, requireLabels: false)
        trained.network.warmUp(encoded)  // kernel creation stays outside the timed forward passes
        let start = Date()
        let p = trained.network.predict(encoded)
        let seconds = Date().timeIntervalSince(start)
        if r.out == "-" { try StandardStreams.write(csv(p).data) } else { try AtomicFile.write(csv(p).data, to: r.out, force: r.force) }
        return PredictionOutcome(rows: encoded.rowCount, seconds: seconds, skippedRows: report.skippedTotal, notes: report.notes)
    }

    /// The predictions file: a header and one `pctr,pcvr,pctcvr` line per row (Float's shortest
    /// round-trip text, as the server writes).
    public static func csv(_ p: Predictions) -> CSVWriter {
        var w = CSVWriter()
        w.append("pctr,pcvr,pctcvr\n")
        func cell(_ v: Float) { if !v.isNaN { w.appendFloat(v) } }
        for i in 0..<p.ctr.count {
            cell(p.ctr[i]); w.comma()
            cell(p.cvr[i]); w.comma()
            cell(p.ctcvr[i]); w.newline()
        }
        return w
    }
}
