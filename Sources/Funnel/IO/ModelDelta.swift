import Foundation

/// `NEXT/delta/`: what a server holding PREV needs to become NEXT without reading NEXT's
/// weights (`train --init-from PREV --delta`): the embedding rows that changed or appeared, the
/// dense weights, and NEXT's manifest and vocabularies (evicted ids are the ones NEXT's
/// vocabularies no longer hold). Applying it to PREV gives NEXT exactly — the applied weights'
/// checksum is checked against NEXT's before a delta is accepted.
///
/// Files: `delta.json` (format, the base's weights checksum, per table its changed-row count
/// and width, the checksums of the other files), `model.json` and `vocabularies.bin` (NEXT's),
/// `rows.bin` (per table: `Int32` row ids, then `Float32` rows, each 8-byte aligned) and
/// `dense.safetensors` (every parameter that is not an embedding table).
public enum ModelDelta {
    public static let directory = "delta"
    static let format = "funnel-delta"

    struct Manifest: Codable {
        var format = ModelDelta.format
        var formatVersion = 1
        var baseWeightsChecksum: String
        var tables: [Table]
        var rowsChecksum: String
        var denseChecksum: String

        struct Table: Codable {
            var name: String
            var rows: Int
            var width: Int
        }

        enum CodingKeys: String, CodingKey {
            case format, tables
            case formatVersion = "format_version", baseWeightsChecksum = "base_weights_checksum"
            case rowsChecksum = "rows_checksum", denseChecksum = "dense_checksum"
        }
    }

    /// The delta's files (named `delta/…`) from PREV to NEXT, NEXT's own files already encoded.
    public static func files(from base: TrainedModel, to next: TrainedModel, nextFiles: [AtomicDirectory.File]) throws -> [AtomicDirectory.File] {
        let map = EmbeddingRowMap(from: base.schema, to: next.schema)
        let old = Dictionary(uniqueKeysWithValues: base.network.parameters.map { ($0.name, $0) })
        var rows = Data(), tables: [Manifest.Table] = [], dense: [SafeTensors.Tensor] = []
        for p in next.network.parameters {
            guard p.isSparse, let q = old[p.name] else {
                dense.append(SafeTensors.Tensor(name: p.name, shape: p.shape, values: p.value.array))
                continue
            }
            let changed = changedRows(p, was: q, map: map)
            tables.append(.init(name: p.name, rows: changed.count, width: p.rowWidth))
            changed.withUnsafeBytes { rows.append(contentsOf: $0) }
            rows.append(Data(count: (8 - rows.count % 8) % 8))
            for r in changed { rows.append(Data(bytes: p.value.base + Int(r) * p.rowWidth, count: p.rowWidth * 4)) }
        }
        let denseData = SafeTensors.encode(dense, metadata: ["producer": "funnel"])
        let manifest = Manifest(baseWeightsChecksum: base.manifest.weightsChecksum, tables: tables,
                                rowsChecksum: Checksum.fnv64Hex(words: rows), denseChecksum: Checksum.fnv64Hex(words: denseData))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let carried = nextFiles.filter { ["model.json", VocabularyFile.fileName].contains($0.name) }
        return (carried + [.init("rows.bin", rows), .init("dense.safetensors", denseData), .init("delta.json", try enc.encode(manifest))])
            .map { .init(directory + "/" + $0.name, $0.data) }
    }

    /// Rows of NEXT's table whose contents are new (an id PREV did not have) or differ from the
    /// row PREV had for the same id.
    private static func changedRows(_ p: Parameter, was q: Parameter, map: EmbeddingRowMap) -> [Int32] {
        let rows = p.shape[0], width = p.rowWidth
        var oldOf = [Int32](repeating: -1, count: rows)
        if q.shape[0] == map.oldRows { for run in map.runs { for i in 0..<run.rows { oldOf[run.to + i] = Int32(run.from + i) } } }
        var out: [Int32] = []
        for r in 0..<rows {
            let o = Int(oldOf[r])
            if o < 0 || memcmp(p.value.base + r * width, q.value.base + o * width, width * 4) != 0 { out.append(Int32(r)) }
        }
        return out
    }
}

extension ModelDelta {
    /// The weights checksum of the model a delta directory applies to.
    public static func baseChecksum(_ dir: String) throws -> String {
        try manifest(of: DirectoryHandle(dir)).baseWeightsChecksum
    }

    /// `delta.json`, decoded and checked to be a Funnel delta of this version.
    static func manifest(of handle: DirectoryHandle) throws -> Manifest {
        let delta: Manifest
        do {
            delta = try JSONDecoder().decode(Manifest.self, from: try handle.contents("delta.json", limit: 1 << 20))
        } catch let e as FunnelError { throw e } catch let e as DataError { throw e } catch {
            throw FunnelError("\(handle.path)/delta.json: not a Funnel delta: \(DecodingErrorText.describe(error))")
        }
        guard delta.format == format, delta.formatVersion == 1 else { throw FunnelError("\(handle.path)/delta.json: not a Funnel delta (version 1)") }
        return delta
    }

    /// NEXT, from `base` (the model PREV, loaded) and NEXT's delta directory: checked to be a delta
    /// of `base`, every file's checksum and every row id checked, and the result's weights
    /// checksum checked to be NEXT's.
    public static func apply(_ dir: String, to base: TrainedModel, maxBatch: Int? = nil, workers: Int = 1) throws -> TrainedModel {
        let handle = try DirectoryHandle(dir)
        let delta = try manifest(of: handle)
        guard delta.baseWeightsChecksum == base.manifest.weightsChecksum else {
            throw FunnelError("\(dir): a delta of the model whose weights checksum is \(delta.baseWeightsChecksum); the base's is \(base.manifest.weightsChecksum)")
        }
        let m = try ModelManifest.load(from: handle)
        let net = try FunnelNetwork(config: m.config, schema: m.schema, maxBatch: maxBatch, workers: workers)
        let rowsBytes = delta.tables.reduce(0) { $0 + $1.rows * (4 + 4 * $1.width) + 8 }
        let rows = try checked(handle, "rows.bin", delta.rowsChecksum, limit: rowsBytes)
        let weights = net.parameters.reduce(0) { $0 + $1.count } * 4 + (16 << 20)
        let (dense, _) = try SafeTensors.decode(try checked(handle, "dense.safetensors", delta.denseChecksum, limit: weights), path: dir + "/dense.safetensors")
        try fill(net, from: base, rows: rows, tables: delta.tables, dense: dense, schema: m.schema, dir: dir)
        var next = TrainedModel(config: m.config, schema: m.schema, network: net, training: m.training)
        next.manifest = m
        let sum = next.weightsChecksum()
        guard sum == m.weightsChecksum else {
            throw FunnelError("\(dir): applied to the base it gives weights \(sum), not the model's \(m.weightsChecksum)")
        }
        return next
    }

    private static func checked(_ handle: DirectoryHandle, _ name: String, _ expected: String, limit: Int) throws -> Data {
        let data = try handle.contents(name, limit: limit)
        guard Checksum.fnv64Hex(words: data) == expected else {
            throw FunnelError("\(handle.path)/\(name): checksum does not match delta.json; the delta is damaged or partial")
        }
        return data
    }

    /// NEXT's parameters: embedding tables from the base's carried rows plus the changed rows,
    /// everything else from the dense file.
    private static func fill(_ net: FunnelNetwork, from base: TrainedModel, rows: Data, tables: [Manifest.Table],
                             dense: [String: SafeTensors.Tensor], schema: FeatureSchema, dir: String) throws {
        try TrainedModel.copy(dense, into: net, path: dir + "/dense.safetensors") { !$0.isSparse }
        let map = EmbeddingRowMap(from: base.schema, to: schema)
        let old = Dictionary(uniqueKeysWithValues: base.network.parameters.map { ($0.name, $0) })
        var at = 0
        for p in net.parameters where p.isSparse {
            guard let q = old[p.name], q.shape[0] == map.oldRows, let t = tables.first(where: { $0.name == p.name }), t.width == p.rowWidth else {
                throw FunnelError("\(dir): table '\(p.name)' does not match the base model")
            }
            map.copy(q.value.base, into: p.value.base, width: p.rowWidth)
            try rows.withUnsafeBytes { raw in
                let idBytes = (t.rows * 4 + 7) / 8 * 8
                guard t.rows >= 0, at + idBytes + t.rows * t.width * 4 <= raw.count else { throw FunnelError("\(dir)/rows.bin: too short for delta.json's tables") }
                let ids = (0..<t.rows).map { raw.loadUnaligned(fromByteOffset: at + 4 * $0, as: Int32.self) }
                at += idBytes
                for (k, id) in ids.enumerated() {
                    guard id >= 0, Int(id) < p.shape[0] else { throw FunnelError("\(dir)/rows.bin: row \(id) is outside table '\(p.name)'") }
                    for j in 0..<t.width { p.value.base[Int(id) * t.width + j] = raw.loadUnaligned(fromByteOffset: at + 4 * (k * t.width + j), as: Float.self) }
                }
                at += t.rows * t.width * 4
            }
        }
    }
}
