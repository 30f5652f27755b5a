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
/// requests that started on the old one finish on it.
public final class ServedModel: @unchecked Sendable {
    public let path: String
    public let model: TrainedModel
    public let decoder: RowDecoder
    public let loadedAt: Date
    let pool: WorkerPool
    /// `{"path", "kind", "weights_checksum"}`, attached to every prediction response.
    let summaryJSON: String

    /// Loads and fully validates `path` (manifest, checksum, every tensor shape).
    public init(path: String, workers: Int, maxRowsPerRequest: Int, rejectUnknownFields: Bool) throws {
        self.path = path
        model = try TrainedModel.load(from: path, maxBatch: min(maxRowsPerRequest, 4096), workers: workers)
        decoder = RowDecoder(schema: model.schema, rejectUnknownFields: rejectUnknownFields)
        loadedAt = Date()
        pool = WorkerPool(workers: workers)
        let summary: [String: Any] = ["path": path, "kind": model.config.kind.rawValue, "weights_checksum": model.manifest.weightsChecksum]
        summaryJSON = String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self)
    }

    /// The same batched forward pass as `funnel predict`, on one worker slot.
    func predict(_ data: EncodedDataset) async -> Predictions {
        let w = await pool.acquire()
        defer { Task { await pool.release(w) } }
        return model.network.predict(data, worker: w)
    }

    public var metadata: [String: Any] {
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
    }
}
