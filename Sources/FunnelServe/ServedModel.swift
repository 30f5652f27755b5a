import Foundation
import Funnel

/// Hands out a network's worker slots to concurrent requests: each request predicts with one
/// worker's scratch buffers, so requests never share buffers and never wait on each other
/// unless every slot is busy.
actor WorkerPool {
    private var free: [Int]
    private var waiting: [CheckedContinuation<Int, Never>] = []

    init(workers: Int) { free = Array((0..<workers).reversed()) }

    func acquire() async -> Int {
        if let w = free.popLast() { return w }
        return await withCheckedContinuation { waiting.append($0) }
    }

    func release(_ w: Int) {
        if waiting.isEmpty { free.append(w) } else { waiting.removeFirst().resume(returning: w) }
    }
}

/// A loaded model ready to serve: immutable once built, so a reload swaps in a new one while
/// requests that started on the old one finish on it. Neural model directories answer
/// pctr/pcvr/pctcvr; GBDT model directories answer p_install (and its parts).
public final class ServedModel: @unchecked Sendable {
    enum Backend {
        case neural(TrainedModel, RequestTableDecoder, WorkerPool)
        case gbdt(TwoStageGBDT, RequestTableDecoder)

        var decoder: RequestTableDecoder {
            switch self {
            case .neural(_, let d, _), .gbdt(_, let d): return d
            }
        }
    }

    public let path: String
    public let loadedAt: Date
    let backend: Backend
    /// `{"path", "kind", …checksum}`, attached to every prediction response.
    let summaryJSON: String
    /// Members a request row may have: the model's columns (features, labels, ignored, day) and
    /// some room for fields the client adds; more is refused while parsing.
    let maxFieldsPerRow: Int
    /// The fields whose values a request's parser keeps (`RequestParser.Limits.known`).
    let knownFields: Set<String>

    /// Loads and fully validates `path` (manifest, checksums, every tensor shape or model file).
    public convenience init(path: String, workers: Int, maxRowsPerRequest: Int, rejectUnknownFields: Bool,
                            gemm: GEMMSettings = GEMMSettings(bucketRowCounts: true)) throws {
        switch try ModelDirectoryKind.detect(path) {
        case .neural:
            let model = try TrainedModel.load(from: path, maxBatch: Self.batch(forRows: maxRowsPerRequest), workers: workers)
            try self.init(model: model, path: path, workers: workers, rejectUnknownFields: rejectUnknownFields, gemm: gemm)
        case .gbdt:
            let model = try TwoStageGBDT.load(from: path)
            try self.init(path: path, backend: .gbdt(model, RequestTableDecoder(pipeline: model.pipeline, dayColumn: model.manifest.read.dayColumn,
                                                                               rejectUnknownFields: rejectUnknownFields)),
                          summary: ["path": path, "kind": "gbdt-two-stage", "features_checksum": model.manifest.featuresChecksum])
        }
    }

    /// A neural model already in memory (loaded, or the served base with a delta applied, `ModelDelta`).
    public convenience init(model: TrainedModel, path: String, workers: Int, rejectUnknownFields: Bool,
                            gemm: GEMMSettings = GEMMSettings(bucketRowCounts: true)) throws {
        model.network.gemm = gemm
        try self.init(path: path, backend: .neural(model, RequestTableDecoder(schema: model.schema, rejectUnknownFields: rejectUnknownFields),
                                                   WorkerPool(workers: workers)),
                      summary: ["path": path, "kind": model.config.kind.rawValue, "weights_checksum": model.manifest.weightsChecksum])
    }

    private init(path: String, backend: Backend, summary: [String: Any]) throws {
        self.path = path
        loadedAt = Date()
        self.backend = backend
        maxFieldsPerRow = backend.decoder.knownFieldCount + 64
        knownFields = backend.decoder.knownFields
        summaryJSON = String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Rows a served network runs at once for requests of up to `rows` rows.
    static func batch(forRows rows: Int) -> Int { min(rows, 4096) }

    /// The neural model served (nil for a GBDT model).
    var trainedModel: TrainedModel? {
        if case .neural(let m, _, _) = backend { return m }
        return nil
    }

    /// Decodes `rows` into the raw table a CSV with the same cells gives, transforms it as
    /// `funnel predict` / `funnel gbdt predict` do (schema encode / fitted pipeline) and writes the `predictions` array into `w`,
    /// through the same batched prediction as `funnel predict` / `funnel gbdt predict`.
    /// Returns the number of rows predicted.
    /// `request`: the ranking form's fields sent once for every row (a neural model computes
    /// their part once, `RequestSharing`).
    func predict(_ rows: [[String: JSONValue]], request: [String: JSONValue]? = nil, into w: inout CSVWriter) async throws -> Int {
        switch backend {
        case .neural(let model, let decoder, let pool):
            let table = try decoder.decode(rows, request: request)
            if let bad = model.schema.denseOutOfRange(table, limit: 1).first { throw RequestError(bad.message, row: bad.row, field: bad.column) }
            let data = model.schema.encode(table)
            let slot = await pool.acquire()
            let p = model.network.predict(data, worker: slot)
            await pool.release(slot)
            func value(_ v: Float) { if v.isNaN { w.append("null") } else { w.appendFloat(v) } }
            w.append("[")
            for r in 0..<data.rowCount {
                if r > 0 { w.comma() }
                w.append("{\"pctr\":"); value(p.ctr[r])
                w.append(",\"pcvr\":"); value(p.cvr[r])
                w.append(",\"pctcvr\":"); value(p.ctcvr[r])
                w.append("}")
            }
            w.append("]")
            return data.rowCount
        case .gbdt(let model, let decoder):
            let table = try decoder.decode(rows, request: request)
            let p: GBDTPredictions
            do { p = try model.predict(table, threads: 1) } catch { throw RequestError("\(error)", status: 422) }
            w.append("[")
            for r in 0..<p.rows {
                if r > 0 { w.comma() }
                w.append("{\"p_install\":\(p.ensemble[r]),\"p_like\":\(p.like[r]),\"p_install_given_like\":\(p.installGivenLike[r])")
                w.append(",\"p_two_step\":\(p.twoStep[r]),\"p_end_to_end\":\(p.endToEnd[r])}")
            }
            w.append("]")
            return p.rows
        }
    }

    /// The model's kind as training named it ("esmm", "mmoe", …), or "gbdt".
    var kindName: String {
        switch backend {
        case .neural(let model, _, _): return model.config.kind.rawValue
        case .gbdt: return "gbdt"
        }
    }

    /// The input columns a request carries (categorical then dense), as the model reads them.
    var inputColumns: [String] {
        switch backend {
        case .neural(let model, _, _): return model.schema.layout.categorical + model.schema.layout.dense
        case .gbdt(let model, _): return model.pipeline.categorical + model.pipeline.numeric
        }
    }

    public var metadata: [String: Any] {
        switch backend {
        case .neural(let model, _, _):
            let c = model.config
            var out: [String: Any] = [
                "path": path, "kind": c.kind.rawValue, "arch": c.trunk.rawValue,
                "loaded_at": ISO8601DateFormatter().string(from: loadedAt),
                "weights_checksum": model.manifest.weightsChecksum, "format_version": model.manifest.formatVersion,
                "categorical": model.schema.layout.categorical, "dense": model.schema.layout.dense,
                "outputs": ["pctr", "pcvr", "pctcvr"],
            ]
            if let t = model.manifest.training { out["trained_rows"] = t.rows }
            return out
        case .gbdt(let model, _):
            let m = model.manifest
            var out: [String: Any] = [
                "path": path, "kind": "gbdt-two-stage", "loaded_at": ISO8601DateFormatter().string(from: loadedAt),
                "format_version": m.formatVersion, "features_checksum": m.featuresChecksum,
                "categorical": model.pipeline.categorical, "dense": model.pipeline.numeric,
                "outputs": ["p_install", "p_like", "p_install_given_like", "p_two_step", "p_end_to_end"],
                "trained_rows": m.trainRows, "features": model.pipeline.featureNames.count,
                "calibration": ["two_step": m.calibration.twoStep, "end_to_end": m.calibration.endToEnd],
            ]
            if let day = model.manifest.read.dayColumn, model.pipeline.hasDay { out["day_column"] = day }
            return out
        }
    }
}
