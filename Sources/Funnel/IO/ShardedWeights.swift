import Foundation

/// A model's weights as shard files with an index, for tables too large to gather on one rank
/// (`train --weights-layout sharded`, or `auto` when the whole tables would not fit rank 0's
/// budget): `weights-0000K-of-0000N.safetensors` holds rank K−1's rows of every row-sharded table
/// (a tensor of the table's name, `localRows × dim`; global row r is in shard (r mod N) + 1 at
/// local row r div N), and shard 1 also every other tensor whole; `weights.index.json` lists the
/// files with their checksums (FNV-1a 64 over words), the row-sharded tables and each tensor's
/// files. `model.json`'s `weights_file` names the index and `weights_checksum` is the index's, so
/// the checksum covers every file.
public struct ShardedWeightsIndex: Codable, Sendable {
    public static let fileName = "weights.index.json"
    public static let formatName = "funnel-sharded-weights"

    public var format = formatName
    public var formatVersion = 1
    public var shards: Int
    /// Per shard file, its FNV-1a 64 over words, hex.
    public var checksums: [String: String]
    /// The tables split by rows: name → rows and width.
    public var rowSharded: [String: RowShardedTensor]
    /// Tensor → the files holding it (every shard for a row-sharded table, else shard 1).
    public var weightMap: [String: [String]]

    public struct RowShardedTensor: Codable, Sendable, Equatable {
        public var rows: Int
        public var dim: Int
        /// How a row finds its shard, in words (the map is fixed: `RowOwnership`).
        public var rule = "global row r is in shard (r mod shards) + 1, at row r div shards"
    }

    enum CodingKeys: String, CodingKey {
        case format, shards, checksums
        case formatVersion = "format_version"
        case rowSharded = "row_sharded"
        case weightMap = "weight_map"
    }

    /// Shard k's (1-based) file name of n.
    public static func fileName(shard k: Int, of n: Int) -> String { String(format: "weights-%05d-of-%05d.safetensors", k, n) }

    /// The shard files of a model of `n` shards, shard 1 first.
    public static func files(shards n: Int) -> [String] { (1...n).map { fileName(shard: $0, of: n) } }

    public var files: [String] { Self.files(shards: shards) }
}

/// Reading a sharded model's weights into a whole network (`TrainedModel.load`): each file's
/// checksum checked against the index, every tensor's shape against the network, every row of a
/// row-sharded table placed at its global row, every parameter filled exactly once.
enum ShardedWeightsReader {
    /// One tensor of one shard file: a row-sharded table's rows of shard `shard`, or (shard 0) a
    /// tensor held whole.
    private struct Piece: Hashable {
        var name: String
        var shard: Int
    }

    static func load(into net: FunnelNetwork, from directory: DirectoryHandle, index indexData: Data, path: String) throws {
        let index = try decodeIndex(indexData, path: path, net: net)
        let params = Dictionary(uniqueKeysWithValues: net.parameters.map { ($0.name, $0) })
        let holdings = Dictionary(uniqueKeysWithValues: net.embeddings.map { ($0.table.name, $0.shard) })
        // A rank of as many ranks as shards holds exactly shard rank + 1's rows (and shard 1's other tensors).
        let mine = net.embeddings.first?.shard
        let read = (0..<index.shards).filter { k in k == 0 || mine.map { $0.ownership.ranks != index.shards || $0.rank == k } ?? true }
        var filled = Set<Piece>()
        for k in read {
            let file = index.files[k], display = directory.path + "/" + file
            guard directory.exists(file) else { throw FunnelError("\(display): missing (\(path) lists it as shard \(k + 1) of \(index.shards))") }
            let data = try directory.contents(file, limit: limit(of: k, index, params) + (16 << 20))
            let sum = Checksum.fnv64Hex(words: data)
            guard sum == index.checksums[file] else {
                throw FunnelError("\(display): checksum \(sum) does not match \(ShardedWeightsIndex.fileName) (\(index.checksums[file] ?? "none")); "
                                  + "the shard is damaged or belongs to another model")
            }
            for (name, t) in try SafeTensors.decode(data, path: display).tensors {
                guard let p = params[name], index.weightMap[name]?.contains(file) == true else {
                    throw FunnelError("\(display): tensor '\(name)' is not the model's or not listed for this file")
                }
                try place(t, into: p, holding: holdings[name] ?? nil, shard: k, of: index, path: display)
                filled.insert(Piece(name: name, shard: index.rowSharded[name] == nil ? 0 : k))
            }
        }
        for p in net.parameters {
            let pieces = index.rowSharded[p.name] == nil ? [Piece(name: p.name, shard: 0)] : read.map { Piece(name: p.name, shard: $0) }
            if let gone = pieces.first(where: { !filled.contains($0) }) {
                throw FunnelError("\(path): tensor '\(p.name)' is missing from shard \(gone.shard + 1) of \(index.shards)")
            }
        }
    }

    private static func decodeIndex(_ data: Data, path: String, net: FunnelNetwork) throws -> ShardedWeightsIndex {
        let index: ShardedWeightsIndex
        do { index = try JSONDecoder().decode(ShardedWeightsIndex.self, from: data) } catch {
            throw FunnelError("\(path): cannot read the weights index: \(DecodingErrorText.describe(error))")
        }
        guard index.format == ShardedWeightsIndex.formatName, index.formatVersion == 1 else {
            throw FunnelError("\(path): not a Funnel weights index (format \(index.format), version \(index.formatVersion))")
        }
        guard (1...4096).contains(index.shards), Set(index.checksums.keys) == Set(index.files) else {
            throw FunnelError("\(path): \(index.shards) shards, checksums for \(index.checksums.count) files: the index does not list its shards")
        }
        for (name, t) in index.rowSharded {
            guard let layer = net.embeddings.first(where: { $0.table.name == name }), layer.rows == t.rows, layer.dim == t.dim else {
                throw FunnelError("\(path): row-sharded table '\(name)' of \(t.rows) × \(t.dim) is not a table of this model")
            }
        }
        return index
    }

    /// The bytes shard k's tensors take: what its file may hold beyond a header.
    private static func limit(of k: Int, _ index: ShardedWeightsIndex, _ params: [String: Parameter]) -> Int {
        params.values.reduce(0) { total, p in
            guard let t = index.rowSharded[p.name] else { return total + (k == 0 ? p.count * 4 : 0) }
            return total + RowOwnership(rows: t.rows, ranks: index.shards).localRows(rank: k) * t.dim * 4
        }
    }

    /// Tensor `t` of shard k into `p`: a row-sharded table's rows at their global rows (those
    /// `p` holds, when the network is itself row-sharded: `holding`), any other tensor whole
    /// (shapes and values checked).
    private static func place(_ t: SafeTensors.Tensor, into p: Parameter, holding: TableShard?, shard k: Int, of index: ShardedWeightsIndex,
                              path: String) throws {
        if let bad = t.values.firstIndex(where: { !$0.isFinite }) {
            throw FunnelError("\(path): tensor '\(t.name)' holds a non-finite value (\(t.values[bad]) at index \(bad))")
        }
        guard let table = index.rowSharded[t.name] else {
            guard t.shape == p.shape else { throw FunnelError("\(path): tensor '\(t.name)' has shape \(t.shape), the model needs \(p.shape)") }
            t.values.withUnsafeBufferPointer { p.value.base.update(from: $0.baseAddress!, count: p.count) }
            return
        }
        let ownership = RowOwnership(rows: table.rows, ranks: index.shards)
        let local = ownership.localRows(rank: k)
        guard t.shape == [local, table.dim] else {
            throw FunnelError("\(path): tensor '\(t.name)' has shape \(t.shape); shard \(k + 1) of \(index.shards) holds \(local) × \(table.dim)")
        }
        t.values.withUnsafeBufferPointer { src in
            placeRows(src.baseAddress!, rows: local, dim: table.dim, into: p, holding: holding) { Int(ownership.globalRow(local: Int32($0), rank: k)) }
        }
    }

    /// Source rows (`rows × dim`, row l being global row `global(l)`) into `p`: the whole table
    /// (`holding` nil), or a rank's rows of it (the others skipped).
    static func placeRows(_ src: UnsafePointer<Float>, rows: Int, dim: Int, into p: Parameter, holding: TableShard?, global: (Int) -> Int) {
        for l in 0..<rows {
            let g = global(l)
            if let holding {
                guard holding.ownership.owner(of: Int32(g)) == holding.rank else { continue }
                (p.value.base + Int(holding.ownership.localIndex(of: Int32(g))) * dim).update(from: src + l * dim, count: dim)
            } else {
                (p.value.base + g * dim).update(from: src + l * dim, count: dim)
            }
        }
    }
}
