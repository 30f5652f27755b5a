import Foundation

/// A model's vocabularies as shard files with an index, written by a job whose vocabularies were
/// split over its ranks (`VocabularyShard`) when its weights are sharded too (`train
/// --weights-layout sharded`): no rank ever holds a whole vocabulary, not even to save it.
/// `vocabularies-0000K-of-0000N.bin` is rank K−1's slice — a `VocabularyFile` of each field's
/// K-th run of ids, in ascending key order, so the files laid end to end are the whole
/// vocabulary; `vocabularies.index.json` lists the files with their checksums (FNV-1a 64 over
/// words) and each field's first id per file. `model.json`'s `vocabulary_file` names the index
/// and `vocabulary_checksum` is the index's, so it covers every file.
public struct ShardedVocabularyIndex: Codable, Sendable {
    public static let fileName = "vocabularies.index.json"
    public static let formatName = "funnel-sharded-vocabularies"

    public var format = formatName
    public var formatVersion = 1
    public var shards: Int
    /// Per shard file, its FNV-1a 64 over words, hex.
    public var checksums: [String: String]
    /// Per field: the ids before each file's first value (file order).
    public var firstIDs: [String: [Int]]

    enum CodingKeys: String, CodingKey {
        case format, shards, checksums
        case formatVersion = "format_version"
        case firstIDs = "first_ids"
    }

    /// Shard k's (1-based) file name of n.
    public static func fileName(shard k: Int, of n: Int) -> String { String(format: "vocabularies-%05d-of-%05d.bin", k, n) }

    public var files: [String] { (1...shards).map { Self.fileName(shard: $0, of: shards) } }
}

/// One field's vocabulary mapped from shard files: pieces of consecutive ids in ascending key
/// order, so a key's piece is found by its first keys and an id's by its first ids.
public struct MappedVocabularyShards: @unchecked Sendable {
    let pieces: [MappedVocabulary]
    let firstIDs: [Int]
    /// Each non-empty piece's first key and index (empty pieces hold no key).
    let firstKeys: [(key: Int64, piece: Int)]
    public let count: Int

    init(pieces: [MappedVocabulary], firstIDs: [Int]) {
        (self.pieces, self.firstIDs) = (pieces, firstIDs)
        firstKeys = pieces.indices.compactMap { p in pieces[p].count > 0 ? (pieces[p].key(at: 0), p) : nil }
        count = pieces.reduce(0) { $0 + $1.count }
    }

    /// The id (1…count) of a key, 0 when absent: looked up in the last piece starting at or below it.
    @inline(__always)
    func id(of key: Int64) -> Int32 {
        var lo = 0, hi = firstKeys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if firstKeys[mid].key <= key { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return 0 }
        let p = firstKeys[lo - 1].piece, id = pieces[p].id(of: key)
        return id == 0 ? 0 : id + Int32(firstIDs[p])
    }

    /// The piece holding value `i` (id i + 1) and its index there: the last piece whose first id
    /// is at or below i (an empty piece shares its first id with the next, which comes later).
    private func locate(_ i: Int) -> (piece: MappedVocabulary, at: Int) {
        var lo = 0, hi = pieces.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if firstIDs[mid] <= i { lo = mid + 1 } else { hi = mid }
        }
        return (pieces[lo - 1], i - firstIDs[lo - 1])
    }

    func key(at i: Int) -> Int64 { let (p, j) = locate(i); return p.key(at: j) }
    func value(at i: Int) -> String { let (p, j) = locate(i); return p.value(at: j) }
    func usage(at i: Int) -> (occurrences: UInt32, lastSeen: Int32)? {
        let (p, j) = locate(i)
        return p.usage.map { ($0.occurrences[j], $0.lastSeen[j]) }
    }

    var hasUsage: Bool { pieces.allSatisfy { $0.usage != nil } }
    var isCanonicalIntegers: Bool { pieces.allSatisfy { $0.text == nil } }
    var pending: [(key: Int64, count: UInt32)] {
        pieces.flatMap { m in m.pending.map { p in (0..<p.count).map { (p.keys[$0], p.counts[$0]) } } ?? [] }
    }
}

extension ShardedVocabularyIndex {
    /// Every field's vocabulary from the index's shard files in `directory` (each file's checksum
    /// checked against the index; each field's pieces checked to follow one another by id and
    /// by key). `counts`: the values model.json declares per field.
    static func open(_ indexData: Data, in directory: DirectoryHandle, path: String, counts: [String: Int]) throws
        -> [String: MappedVocabularyShards] {
        let index: ShardedVocabularyIndex
        do { index = try JSONDecoder().decode(ShardedVocabularyIndex.self, from: indexData) } catch {
            throw FunnelError("\(path): cannot read the vocabulary index: \(DecodingErrorText.describe(error))")
        }
        guard index.format == formatName, index.formatVersion == 1, (1...4096).contains(index.shards),
              Set(index.checksums.keys) == Set(index.files) else {
            throw FunnelError("\(path): not a Funnel vocabulary index of its shard files (format \(index.format), \(index.shards) shards)")
        }
        var files: [[String: MappedVocabulary]] = []
        for file in index.files {
            let display = directory.path + "/" + file
            guard directory.exists(file) else { throw FunnelError("\(display): missing (\(path) lists it)") }
            let (region, checksum) = try directory.mapped(file)
            let sum = String(format: "%016llx", checksum)
            guard sum == index.checksums[file] else {
                throw FunnelError("\(display): checksum \(sum) does not match \(fileName) (\(index.checksums[file] ?? "none")); "
                                  + "the shard is damaged or belongs to another model")
            }
            files.append(try VocabularyFile.open(region, path: display))
        }
        var out: [String: MappedVocabularyShards] = [:]
        for (name, count) in counts {
            out[name] = try index.field(name, count: count, files: files, path: path)
        }
        return out
    }

    /// Field `name`'s pieces, checked: one per file, each starting where the one before ended,
    /// keys ascending across files, `count` values in all.
    private func field(_ name: String, count: Int, files: [[String: MappedVocabulary]], path: String) throws -> MappedVocabularyShards {
        guard let first = firstIDs[name], first.count == shards else { throw FunnelError("\(path): field '\(name)' has no first ids per shard") }
        var pieces: [MappedVocabulary] = [], next = 0, lastKey: Int64?
        for (k, file) in files.enumerated() {
            guard let piece = file[name] else { throw FunnelError("\(path): field '\(name)' is missing from \(self.files[k])") }
            guard first[k] == next else {
                throw FunnelError("\(path): field '\(name)': \(self.files[k]) starts at id \(first[k] + 1), the files before it end at \(next)")
            }
            if piece.count > 0 {
                if let lastKey, piece.key(at: 0) <= lastKey {
                    throw FunnelError("\(path): field '\(name)': the keys of \(self.files[k]) do not follow those of the files before it")
                }
                lastKey = piece.key(at: piece.count - 1)
            }
            pieces.append(piece)
            next += piece.count
        }
        guard next == count else { throw FunnelError("\(path): field '\(name)' holds \(next) values in its shards; model.json declares \(count)") }
        return MappedVocabularyShards(pieces: pieces, firstIDs: first)
    }
}
