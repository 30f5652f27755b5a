import Foundation

/// Writes a row-sharded network's weights as shard files (`ShardedWeightsIndex`) without any rank
/// holding a whole table: rank 0 writes every file, streaming rank k's rows into shard k + 1 as
/// they arrive (at most `RowShardedTable.gatherRows` rows per message), so its memory holds one
/// message beyond its own rows. Collective: rank 0 streams through `files()` inside its atomic
/// directory write, the other ranks run `send()`, which makes the same exchanges in the same order.
public final class ShardedWeightsWriter {
    let network: FunnelNetwork
    let sharded: ShardedEmbeddings
    /// Filled as the shards stream: each file's checksum, then the index's.
    private var checksums: [String: String] = [:]
    public private(set) var indexChecksum = ""

    public init?(_ network: FunnelNetwork) {
        guard let sharded = network.sharded else { return nil }
        self.network = network
        self.sharded = sharded
    }

    var shards: Int { sharded.communicator.size }

    /// The tensors of shard k (0-based): every row-sharded table's slice of rank k, and in shard 0
    /// every other parameter, in the order of the network's parameters.
    private func tensors(ofShard k: Int) -> [(parameter: Parameter, rows: RowOwnership?)] {
        network.parameters.compactMap { p in
            guard let t = sharded.tables.first(where: { $0.layer.table === p }) else { return k == 0 ? (p, nil) : nil }
            return (p, t.exchange.ownership)
        }
    }

    /// Rank 0: the shard files, then the index (its checksum then in `indexChecksum`).
    public func files() -> [AtomicDirectory.File] {
        var files = ShardedWeightsIndex.files(shards: shards).enumerated().map { k, name in
            AtomicDirectory.File(name) { write in try self.stream(shard: k, write) }
        }
        files.append(AtomicDirectory.File(ShardedWeightsIndex.fileName) { write in
            let data = try self.index()
            self.indexChecksum = Checksum.fnv64Hex(data)
            try data.withUnsafeBytes { try write($0) }
        })
        return files
    }

    /// Shard k's bytes: the header, then each tensor's rows — rank 0's own from memory, rank k's
    /// as its messages arrive.
    private func stream(shard k: Int, _ write: (UnsafeRawBufferPointer) throws -> Void) throws {
        var sum = Checksum.PieceStream()
        func out(_ bytes: UnsafeRawBufferPointer) throws { sum.update(bytes); try write(bytes) }
        let parts = tensors(ofShard: k)
        let header = SafeTensors.header(parts.map { p in
            (p.parameter.name, p.rows.map { [$0.localRows(rank: k), p.parameter.rowWidth] } ?? p.parameter.shape)
        }, metadata: ["format": "pt", "producer": "funnel", "shard": "\(k + 1) of \(shards)"])
        try header.withUnsafeBytes { try out($0) }
        for (p, rows) in parts {
            guard let rows, k != 0 else {
                try out(UnsafeRawBufferPointer(start: p.value.base, count: p.count * 4))
                continue
            }
            let expected = rows.localRows(rank: k) * p.rowWidth * 4
            var received = 0
            for _ in 0..<RowShardedTable.rounds(rows.localRows(rank: k)) {
                let message = try sharded.communicator.exchange([[UInt8]](repeating: [], count: shards), kind: .control)[k]
                received += message.count
                try message.withUnsafeBytes { try out($0) }
            }
            guard received == expected else { throw FunnelError("rank \(k) sent \(received) bytes of \(p.name)'s rows, not \(expected)") }
        }
        checksums[ShardedWeightsIndex.fileName(shard: k + 1, of: shards)] = sum.hex
    }

    /// Ranks other than 0: this rank's rows of every table, message by message, when rank 0's
    /// stream of its shard asks; every other shard's exchanges with nothing to send.
    public func send() throws {
        let comm = sharded.communicator
        for k in 1..<shards {
            for (p, rows) in tensors(ofShard: k) {
                guard let rows else { continue }
                let local = rows.localRows(rank: k), width = p.rowWidth
                for round in 0..<RowShardedTable.rounds(local) {
                    var blocks = [[UInt8]](repeating: [], count: shards)
                    if k == comm.rank {
                        let mine = RowShardedTable.rows(ofRound: round, local)
                        blocks[0] = Array(UnsafeRawBufferPointer(start: p.value.base + mine.lowerBound * width, count: mine.count * width * 4))
                    }
                    _ = try comm.exchange(blocks, kind: .control)
                }
            }
        }
    }

    private func index() throws -> Data {
        var map: [String: [String]] = [:]
        var tables: [String: ShardedWeightsIndex.RowShardedTensor] = [:]
        let files = ShardedWeightsIndex.files(shards: shards)
        for (p, rows) in tensors(ofShard: 0) {
            map[p.name] = rows == nil ? [files[0]] : files
            if let rows { tables[p.name] = .init(rows: rows.rows, dim: p.rowWidth) }
        }
        let index = ShardedWeightsIndex(shards: shards, checksums: checksums, rowSharded: tables, weightMap: map)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(index)
    }
}
