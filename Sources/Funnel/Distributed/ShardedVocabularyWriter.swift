import Foundation

/// Writes a job's split vocabularies (`VocabularyShard`) as shard files (`ShardedVocabularyIndex`)
/// without any rank holding them whole: rank 0 writes every file, receiving rank k's slice when
/// it writes shard k + 1, so its memory holds one slice beyond its own. Collective, as
/// `ShardedWeightsWriter`: rank 0 streams through `files()` inside its atomic directory write,
/// the other ranks run `send()`, which makes the same exchanges in the same order.
public final class ShardedVocabularyWriter {
    let shard: VocabularyShard
    /// Filled as the shards are written: each file's checksum, then the index's.
    private var checksums: [String: String] = [:]
    public private(set) var indexChecksum = ""

    public init(_ shard: VocabularyShard) { self.shard = shard }

    var shards: Int { shard.communicator.size }

    /// Rank 0: the shard files, then the index (its checksum then in `indexChecksum`).
    public func files() -> [AtomicDirectory.File] {
        var files = (0..<shards).map { k in
            let name = ShardedVocabularyIndex.fileName(shard: k + 1, of: shards)
            return AtomicDirectory.File(name) { write in
                let data = try self.file(shard: k)
                self.checksums[name] = Checksum.fnv64Hex(words: data)
                try data.withUnsafeBytes { try write($0) }
            }
        }
        files.append(AtomicDirectory.File(ShardedVocabularyIndex.fileName) { write in
            let data = try self.index()
            self.indexChecksum = Checksum.fnv64Hex(words: data)
            try data.withUnsafeBytes { try write($0) }
        })
        return files
    }

    /// Shard k's vocabulary file: rank 0's own slices, or rank k's as its message arrives.
    private func file(shard k: Int) throws -> Data {
        guard k != 0 else { return try VocabularyFile.encode(shard.slices) }
        let message = try shard.communicator.exchange([[UInt8]](repeating: [], count: shards))[k]
        return try VocabularyFile.encode(try VocabularyShard.joined(shard.slices, [message], what: "vocabulary slice \(k + 1)"))
    }

    /// Ranks other than 0: this rank's slices when rank 0 writes its shard; every other shard's
    /// exchange with nothing to send.
    public func send() throws {
        let comm = shard.communicator
        for k in 1..<shards {
            var blocks = [[UInt8]](repeating: [], count: shards)
            if k == comm.rank { blocks[0] = shard.sliceMessage() }
            _ = try comm.exchange(blocks)
        }
    }

    private func index() throws -> Data {
        var first: [String: [Int]] = [:]
        for (k, f) in shard.slices.enumerated() where f.hashBuckets == nil { first[f.name] = shard.firstIDs[k] }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(ShardedVocabularyIndex(shards: shards, checksums: checksums, firstIDs: first))
    }
}
