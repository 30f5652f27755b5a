import Foundation

/// `mpirun -np N funnel predict` and `funnel eval`: prediction for models whose tables need not
/// fit one machine. Each rank holds its rows of every table (`TableShard`; read from its own
/// shard file when the model has one per rank) and reads its share of the data rows (data row i
/// on rank i mod N); every block's rows are fetched from their owners (`predictCollectively`,
/// forward all-to-alls only); rank 0 gathers every rank's predictions, puts them back in file
/// order by source row, and writes the file one process writes — or computes the metrics one
/// process computes.
enum DistributedInference {
    /// Rank 0's rows of every rank, in file order (nil on the other ranks).
    struct Gathered {
        var predictions = Predictions(count: 0)
        var click: [Float] = [], conversion: [Float] = []
        var sourceRows: [Int32] = []
    }

    /// A model directory opened for this rank: its manifest read once, for the data's encoding and
    /// then the network.
    struct Opened {
        var directory: DirectoryHandle
        var manifest: ModelManifest
        init(_ dir: String) throws {
            directory = try DirectoryHandle(dir)
            manifest = try ModelManifest.load(from: directory)
        }
    }

    /// The model with this rank's rows of its tables, sized for `data`'s blocks.
    static func load(_ opened: Opened, threads: Int, for data: EncodedDataset, comm: Communicator) throws -> TrainedModel {
        let bagValues = try comm.maximum(data.maxBagValues)
        let schema = opened.manifest.schema
        let lookup = max(1, threads) * TrainedModel.predictionBatch * (schema.fields.count + bagValues)
        let shard = TableShard(ownership: RowOwnership(rows: schema.embeddingRows, ranks: comm.size), rank: comm.rank,
                               lookupRows: min(schema.embeddingRows, lookup))
        let model = try TrainedModel.load(opened.directory, manifest: opened.manifest, maxBatch: TrainedModel.predictionBatch,
                                          workers: threads, shard: shard)
        model.network.shareTables(over: comm)
        return model
    }

    /// This rank's data rows of `path` (every N-th), encoded with the model's schema.
    static func read(_ path: String, model opened: Opened, options: ReadOptions, requireLabels: Bool, comm: Communicator) throws
        -> (data: EncodedDataset, report: ReadReport) {
        var options = options
        options.shard = comm.shard
        return try DatasetLoader.load(path, schema: opened.manifest.schema, options: options, requireLabels: requireLabels)
    }

    /// Every rank's predictions (and labels when `labels`) on rank 0, ordered by source row.
    static func gather(_ p: Predictions, of data: EncodedDataset, labels: Bool, comm: Communicator) throws -> Gathered? {
        var w = ByteWriter()
        for i in 0..<data.rowCount {
            w.put(data.sourceRows[i])
            for v in [p.ctr, p.cvr, p.ctcvr] { w.put(v[i].bitPattern) }
            if labels { for v in [data.click!, data.conversion!] { w.put(v[i].bitPattern) } }
        }
        var blocks = [[UInt8]](repeating: [], count: comm.size)
        blocks[0] = w.bytes
        let received = try comm.exchange(blocks, kind: .control)
        guard comm.isRoot else { return nil }
        var rows: [(source: Int32, values: [Float])] = []
        let width = labels ? 5 : 3
        for (r, bytes) in received.enumerated() {
            try bytes.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s predictions")
                while !cursor.isAtEnd {
                    let source = try cursor.read(Int32.self)
                    rows.append((source, try (0..<width).map { _ in Float(bitPattern: try cursor.read(UInt32.self)) }))
                }
            }
        }
        rows.sort { $0.source < $1.source }
        var out = Gathered()
        out.predictions = Predictions(ctr: rows.map { $0.values[0] }, cvr: rows.map { $0.values[1] }, ctcvr: rows.map { $0.values[2] })
        if labels { (out.click, out.conversion) = (rows.map { $0.values[3] }, rows.map { $0.values[4] }) }
        out.sourceRows = rows.map(\.source)
        return out
    }

    /// `funnel predict` over the job's ranks; rank 0 writes `r.out`.
    static func predict(_ r: PredictionRequest, options: ReadOptions) throws -> PredictionOutcome {
        let comm = r.communicator
        let opened = try Opened(r.model)
        let (data, report) = try read(r.data, model: opened, options: options, requireLabels: false, comm: comm)
        let model = try load(opened, threads: r.threads, for: data, comm: comm)
        model.network.gemm = r.gemm
        if r.requestSharing { model.network.shareRequests(as: data) }
        let start = Date()
        let p = try model.network.predictCollectively(data)
        let seconds = Date().timeIntervalSince(start)
        var skipped = [Double(report.skippedTotal)]
        try comm.allreduceSum(&skipped)
        let all = try gather(p, of: data, labels: false, comm: comm)
        if let all {
            let text = PredictionJob.csv(all.predictions).data
            if r.out == "-" { try StandardStreams.write(text) } else { try AtomicFile.write(text, to: r.out, force: r.force) }
        }
        return PredictionOutcome(rows: all?.sourceRows.count ?? data.rowCount, seconds: seconds, skippedRows: Int(skipped[0]),
                                 notes: report.notes)
    }

    /// `funnel eval` over the job's ranks: rank 0's reports (the others' are empty).
    static func evaluate(_ r: EvaluationRequest, note: (String) -> Void) throws -> [(model: String, report: EvaluationReport)] {
        let comm = r.communicator
        var results: [(String, EvaluationReport)] = []
        for dir in r.models {
            let opened = try Opened(dir)
            let (data, report) = try read(r.data, model: opened, options: r.read, requireLabels: true, comm: comm)
            let model = try load(opened, threads: r.threads, for: data, comm: comm)
            if r.requestSharing { model.network.shareRequests(as: data) }
            let p = try model.network.predictCollectively(data)
            guard let all = try gather(p, of: data, labels: true, comm: comm) else { continue }
            for n in report.notes { note(n) }
            let labels = EncodedDataset(rowCount: all.click.count, fields: 0, denseCount: 0, ids: [], dense: [], click: all.click,
                                        conversion: all.conversion, sourceRows: all.sourceRows)
            results.append((dir, try EvaluationJob.metrics(all.predictions, labels: labels, dataLines: report.dataLines, r, model, dir: dir,
                                                           note: note)))
        }
        return results
    }
}
