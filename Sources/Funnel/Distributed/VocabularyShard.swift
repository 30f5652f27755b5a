import Foundation

/// The vocabularies of a row-sharded job, split over its ranks by key range, so that no rank
/// holds a structure as large as the id space (at 1B ids the vocabulary alone is many GB).
///
/// Fitting (`fit`): every rank sends the counts of its rows' keys to the keys' owners — rank r
/// counts the keys in the r-th range of sampled splitters — and each owner keeps the values seen
/// `minCount` times, ascending by key. The owners' values laid end to end in rank order are then
/// exactly one process's vocabulary (values ascending by key), so the ids and the model are the
/// same. The ranks finally re-cut each field's values into N equal contiguous runs (rank t holds
/// ids t·n/N + 1 … (t + 1)·n/N): every rank holds the same share of every field whatever the key
/// distribution, and each field's splitters are its runs' first keys. Why key ranges rather than
/// hash(key) mod N: a rank's values are one run of ids, so the ranks' slices joined are the whole
/// vocabulary and numbering needs only the counts. A hashed field (`--hash-buckets`) has no
/// vocabulary: its keys go to the owner of their bucket's range, so its notes (distinct values,
/// buckets used) add up across the ranks.
///
/// Encoding is collective (`encode`): each rank sends the distinct keys of its rows to their
/// owners and encodes with the ids they answer — it holds ids only for the keys of its rows.
public final class VocabularyShard: @unchecked Sendable {
    let communicator: Communicator
    /// Per field, N − 1 ascending keys; rank r owns the field's keys in [splitters[r − 1], splitters[r]).
    let splitters: [[Int64]]
    /// This rank's values of each field (ids 1… within the slice); a hashed field as fitted.
    let slices: [FieldVocabulary]
    /// Per field and rank: the id before that rank's first value.
    let firstIDs: [[Int]]
    /// Keys each rank contributes to the splitters' sample.
    static let samplesPerRank = 256

    init(communicator: Communicator, splitters: [[Int64]], slices: [FieldVocabulary], firstIDs: [[Int]]) {
        (self.communicator, self.splitters, self.slices, self.firstIDs) = (communicator, splitters, slices, firstIDs)
    }

    /// Values this rank holds, over every field.
    public var valuesHeld: Int { Self.values(of: slices) }

    /// Values of `fields`' vocabularies (a field using another's rows holds none of its own).
    static func values(of fields: [FieldVocabulary]) -> Int {
        fields.reduce(0) { $0 + ($1.hashBuckets == nil && $1.sharesRowsWith == nil ? $1.count : 0) }
    }

    /// The rank owning `key` of a vocabulary: the number of splitters at or below it.
    @inline(__always)
    static func owner(of key: Int64, _ splitters: [Int64]) -> Int {
        var lo = 0, hi = splitters.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if splitters[mid] <= key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The rank owning `key` of a field hashed into `buckets`: its bucket's range.
    @inline(__always)
    static func owner(hashed key: Int64, buckets: Int, ranks: Int) -> Int {
        Int(HashBuckets.bucket(key, buckets)) * ranks / (buckets + 1)
    }
}

// MARK: - Fitting

extension VocabularyShard {
    /// What fitting a split vocabulary gives every rank: the schema it trains with (each field's
    /// count, no values), this rank's shard, the whole data's counts and the hashed fields' notes.
    struct Fitted {
        var schema: FeatureSchema
        var shard: VocabularyShard
        var rows: Int, clicks: Int, conversions: Int
        var hashNotes: [String]
    }

    /// Fits the vocabularies of every rank's rows split by key range (`local`: this rank's counts
    /// and moments). Collective. The dense statistics and counts are the whole data's, combined
    /// in rank order as `Accumulator.merged` does.
    static func fit(_ local: FeatureSchema.Accumulator, minCount: Int, options: ReadOptions, communicator comm: Communicator,
                    file: String) throws -> Fitted {
        try options.vocabularyPolicy?.check(local.layout, file: file)
        let hashing = options.hashBuckets
        let splitters = try Self.splitters(local, hashing: hashing, comm)
        var owned = try routed(local, splitters: splitters, hashing: hashing, comm)
        try owned.takeTotals(of: local, comm)
        let (sliced, _) = owned.schema(minCount: minCount, hashing: hashing, sharing: options.sharedVocabularies, previous: nil,
                                       policy: options.vocabularyPolicy)
        let (slices, firstIDs, fieldSplitters, totals) = try rebalanced(sliced.fields, comm)
        var schema = sliced
        for (k, f) in sliced.fields.enumerated() where f.hashBuckets == nil {
            schema.fields[k] = FieldVocabulary(name: f.name, count: totals[k], known: [:], sharesRowsWith: f.sharesRowsWith)
        }
        var stats = owned.hashStatistics(hashing)
        var sums = stats.flatMap { [Double($0.distinct), Double($0.used)] }
        try comm.allreduceSum(&sums)
        for i in stats.indices { (stats[i].distinct, stats[i].used) = (Int(sums[2 * i]), Int(sums[2 * i + 1])) }
        let shard = VocabularyShard(communicator: comm, splitters: fieldSplitters, slices: slices, firstIDs: firstIDs)
        return Fitted(schema: schema, shard: shard, rows: owned.rows, clicks: owned.clicks, conversions: owned.conversions,
                      hashNotes: FeatureSchema.Accumulator.hashNotes(stats, hashing))
    }

    /// Each field's values re-cut into N equal contiguous runs, rank t the t-th: the slices, each
    /// rank's first id per field, each field's splitters (its runs' first keys; an empty run
    /// takes the next one's, so its key range is empty) and value counts. Collective.
    private static func rebalanced(_ fields: [FieldVocabulary], _ comm: Communicator) throws
        -> (slices: [FieldVocabulary], firstIDs: [[Int]], splitters: [[Int64]], totals: [Int]) {
        let ranks = comm.size
        let counts = try comm.allgather(values: fields.map { Int64($0.hashBuckets == nil ? $0.count : 0) })
        var blocks = [ByteWriter](repeating: ByteWriter(), count: ranks), runs: [[Int]] = []
        for (k, f) in fields.enumerated() {
            let before = (0..<comm.rank).reduce(0) { $0 + Int(counts[$1][k]) }
            let total = (0..<ranks).reduce(0) { $0 + Int(counts[$1][k]) }
            let start = (0...ranks).map { $0 * total / ranks }
            runs.append(start)
            guard f.hashBuckets == nil else { continue }
            for t in 0..<ranks {
                let lo = max(start[t], before), hi = min(start[t + 1], before + f.count)
                put(f, values: lo < hi ? (lo - before)..<(hi - before) : 0..<0, into: &blocks[t])
            }
        }
        let slices = try joined(fields, try comm.exchange(blocks.map(\.bytes)), what: "vocabulary run")
        let firsts = try comm.allgather(values: slices.map { $0.hashBuckets == nil && $0.count > 0 ? $0.key(at: 0) : 0 })
        let splitters = fields.indices.map { k in
            var s = [Int64](repeating: .max, count: ranks - 1)
            for t in stride(from: ranks - 1, through: 1, by: -1) {
                let empty = runs[k][t + 1] == runs[k][t]
                s[t - 1] = empty ? (t < ranks - 1 ? s[t] : .max) : firsts[t][k]
            }
            return s
        }
        return (slices, runs.map { Array($0.dropLast()) }, splitters, runs.map { $0[ranks] })
    }

    /// Quantiles of every rank's sample of its distinct keys (the same on every rank). A key
    /// seen in several fields is several values: it counts once per field.
    private static func splitters(_ local: FeatureSchema.Accumulator, hashing: HashBuckets, _ comm: Communicator) throws -> [Int64] {
        var keys: [Int64] = []
        for (k, name) in local.layout.categorical.enumerated() where hashing.buckets(for: name) == nil { keys += local.counts[k].keys }
        keys.sort()
        let n = min(samplesPerRank, keys.count)
        let sample = (0..<n).map { keys[$0 * keys.count / n] }
        let pooled = try comm.allgather(values: sample).flatMap { $0 }.sorted()
        return (1..<comm.size).map { r in pooled.isEmpty ? .max : pooled[r * pooled.count / comm.size] }
    }

    /// The counts (and latest days, and value texts) of the keys this rank owns, from every
    /// rank's rows; added in rank order.
    private static func routed(_ local: FeatureSchema.Accumulator, splitters: [Int64], hashing: HashBuckets,
                               _ comm: Communicator) throws -> FeatureSchema.Accumulator {
        let layout = local.layout, ranks = comm.size
        let hasDays = try comm.maximum(local.lastDays == nil ? 0 : 1) == 1
        var blocks = [ByteWriter](repeating: ByteWriter(), count: ranks)
        for (k, name) in layout.categorical.enumerated() {
            var parts = [[(Int64, Int)]](repeating: [], count: ranks)
            let buckets = hashing.buckets(for: name)
            for (key, n) in local.counts[k] {
                parts[buckets.map { owner(hashed: key, buckets: $0, ranks: ranks) } ?? owner(of: key, splitters)].append((key, n))
            }
            for r in 0..<ranks {
                blocks[r].putCount(parts[r].count)
                for (key, n) in parts[r].sorted(by: { $0.0 < $1.0 }) {
                    blocks[r].put(key); blocks[r].putCount(n)
                    if hasDays { blocks[r].put(Int64(local.lastDays?[k][key] ?? .min)) }
                }
            }
        }
        var texts = [[(Int64, String)]](repeating: [], count: ranks)
        for (key, text) in local.textTokens { texts[owner(of: key, splitters)].append((key, text)) }
        for r in 0..<ranks {
            blocks[r].putCount(texts[r].count)
            for (key, text) in texts[r].sorted(by: { $0.0 < $1.0 }) {
                blocks[r].put(key); blocks[r].putCount(text.utf8.count)
                Array(text.utf8).withUnsafeBytes { blocks[r].put(raw: $0) }
            }
        }
        var owned = FeatureSchema.Accumulator(layout: layout)
        if hasDays { owned.lastDays = Array(repeating: [:], count: layout.categorical.count) }
        for (r, message) in try comm.exchange(blocks.map(\.bytes)).enumerated() {
            try message.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s vocabulary counts")
                try owned.addOwned(from: &cursor, days: hasDays)
            }
        }
        return owned
    }
}

extension FeatureSchema.Accumulator {
    /// Adds one rank's counts of the keys this rank owns (`VocabularyShard.routed`).
    fileprivate mutating func addOwned(from cursor: inout ByteCursor, days: Bool) throws {
        for k in 0..<counts.count {
            for _ in 0..<(try cursor.readCount(elementBytes: days ? 24 : 16)) {
                let key = try cursor.read(Int64.self)
                counts[k][key, default: 0] += try cursor.read(Int.self)
                if days { see(key, day: Int32(clamping: try cursor.read(Int64.self)), field: k) }
            }
        }
        for _ in 0..<(try cursor.readCount(elementBytes: 16)) {
            let key = try cursor.read(Int64.self)
            let text = String(decoding: try cursor.region(try cursor.readCount(elementBytes: 1)), as: UTF8.self)
            if textTokens[key] == nil { textTokens[key] = text }
        }
    }

    /// The whole data's rows, clicks, conversions, dense moments (combined in rank order, as
    /// `merged` combines them) and latest day, from every rank's `local`.
    fileprivate mutating func takeTotals(of local: FeatureSchema.Accumulator, _ comm: Communicator) throws {
        var totals = [Double(local.rows), Double(local.clicks), Double(local.conversions)]
        try comm.allreduceSum(&totals)
        (rows, clicks, conversions) = (Int(totals[0]), Int(totals[1]), Int(totals[2]))
        for m in try comm.allgather(values: local.moments.flatMap { [$0.n, $0.mean, $0.m2] }) {
            for k in moments.indices {
                if let both = Self.combined(moments[k], (m[3 * k], m[3 * k + 1], m[3 * k + 2])) { moments[k] = both }
            }
        }
        maxDay = Int32(clamping: try comm.maximum(Int(local.maxDay)))
    }
}

// MARK: - Encoding

extension VocabularyShard {
    /// `raw` encoded as one process would with the whole vocabularies: the distinct keys of its
    /// rows are resolved at their owners first. Collective: every rank calls it together (a rank
    /// without rows with an empty table). `schema`: the job's (counts only).
    func encode(_ raw: RawTable, schema: FeatureSchema) throws -> EncodedDataset {
        try resolved(schema, keys: Self.distinctKeys(of: raw)).encode(raw)
    }

    /// Per categorical field, the distinct keys of `raw`'s rows (cells, bag values and request
    /// lists), ascending.
    static func distinctKeys(of raw: RawTable) -> [[Int64]] {
        let layout = raw.layout
        var keys = [[Int64]](repeating: [], count: layout.categorical.count)
        for (k, name) in layout.categorical.enumerated() {
            if let b = layout.multiValued.firstIndex(of: name) { keys[k] = raw.bags[b].keys } else { keys[k] = raw.keys[k] }
        }
        if let p = raw.requests?.perRequest {
            for (name, bag) in zip(p.fields, p.bags) {
                if let k = layout.categorical.firstIndex(of: name) { keys[k] += bag.keys }
            }
        }
        return keys.map { field in
            var distinct: [Int64] = []
            for key in field.sorted() where distinct.last != key { distinct.append(key) }
            return distinct
        }
    }

    /// `schema` with each vocabulary holding the ids of `keys` (ids of the whole vocabulary,
    /// answered by the keys' owners; 0 for a value not kept).
    func resolved(_ schema: FeatureSchema, keys: [[Int64]]) throws -> FeatureSchema {
        let ranks = communicator.size, me = communicator.rank, fields = slices.count
        var asks = [[[Int64]]](repeating: [[Int64]](repeating: [], count: fields), count: ranks)
        for k in 0..<fields where slices[k].hashBuckets == nil {
            for key in keys[k] { asks[Self.owner(of: key, splitters[k])][k].append(key) }
        }
        let questions = try communicator.exchange(asks.map { perField in
            var w = ByteWriter()
            for list in perField { w.putCount(list.count); for key in list { w.put(key) } }
            return w.bytes
        })
        var answers: [[UInt8]] = []
        for (r, question) in questions.enumerated() {
            var w = ByteWriter()
            try question.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s vocabulary question")
                for k in 0..<fields {
                    for _ in 0..<(try cursor.readCount(elementBytes: 8)) {
                        let id = slices[k].hashBuckets == nil ? Int(slices[k].id(of: try cursor.read(Int64.self))) : 0
                        w.put(Int32(id == 0 ? 0 : id + firstIDs[k][me]))
                    }
                }
            }
            answers.append(w.bytes)
        }
        let replies = try communicator.exchange(answers, expecting: asks.map { 4 * $0.reduce(0) { $0 + $1.count } })
        var out = schema
        for k in 0..<fields where slices[k].hashBuckets == nil {
            var known: [Int64: Int32] = [:]
            for r in 0..<ranks {
                let ids: [Int32] = Communicator.values(replies[r])
                let before = asks[r][0..<k].reduce(0) { $0 + $1.count }
                for (i, key) in asks[r][k].enumerated() where ids[before + i] != 0 { known[key] = ids[before + i] }
            }
            let f = schema.fields[k]
            out.fields[k] = FieldVocabulary(name: f.name, count: f.count, known: known, sharesRowsWith: f.sharesRowsWith)
        }
        return out
    }
}

// MARK: - Gathering

extension VocabularyShard {
    /// The whole vocabularies — every rank's slices joined in rank order, which is one process's
    /// vocabulary — on every rank (`everyRank`) or on rank 0 alone (nil elsewhere). Collective.
    func gathered(everyRank: Bool) throws -> [FieldVocabulary]? {
        let parts: [[UInt8]]
        if everyRank {
            parts = try communicator.allgatherBytes(sliceMessage())
        } else {
            let blocks = (0..<communicator.size).map { $0 == 0 ? sliceMessage() : [] }
            parts = try communicator.exchange(blocks)
            guard communicator.isRoot else { return nil }
        }
        return try Self.joined(slices, parts, what: "vocabulary slice")
    }

    /// This rank's slices as one message (`joined` reads it).
    func sliceMessage() -> [UInt8] {
        var w = ByteWriter()
        for f in slices where f.hashBuckets == nil { Self.put(f, values: 0..<f.count, into: &w) }
        return w.bytes
    }

    /// Values `range` of `f` (text, occurrences, last-seen day each) as a message part.
    static func put(_ f: FieldVocabulary, values range: Range<Int>, into w: inout ByteWriter) {
        w.putCount(range.count)
        for i in range {
            let text = Array(f.value(at: i).utf8), usage = f.usage(at: i) ?? (0, 0)
            w.putCount(text.count)
            text.withUnsafeBytes { w.put(raw: $0) }
            w.put(usage.occurrences); w.put(usage.lastSeen)
        }
    }

    /// `fields` (names, sharing, hashing) holding the values of every rank's message, in rank order.
    static func joined(_ fields: [FieldVocabulary], _ parts: [[UInt8]], what: String) throws -> [FieldVocabulary] {
        var values = [[String]](repeating: [], count: fields.count)
        var occurrences = [[UInt32]](repeating: [], count: fields.count), lastSeen = [[Int32]](repeating: [], count: fields.count)
        for (r, part) in parts.enumerated() {
            try part.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s \(what)")
                for k in fields.indices where fields[k].hashBuckets == nil {
                    for _ in 0..<(try cursor.readCount(elementBytes: 16)) {
                        values[k].append(String(decoding: try cursor.region(try cursor.readCount(elementBytes: 1)), as: UTF8.self))
                        occurrences[k].append(try cursor.read(UInt32.self))
                        lastSeen[k].append(try cursor.read(Int32.self))
                    }
                }
            }
        }
        return fields.indices.map { k in
            let f = fields[k]
            guard f.hashBuckets == nil else { return f }
            return FieldVocabulary(name: f.name, values: values[k], occurrences: occurrences[k], lastSeen: lastSeen[k], pending: [],
                                   sharesRowsWith: f.sharesRowsWith)
        }
    }
}

extension VocabularyShard {
    /// Whether a job's vocabularies can be split: several ranks, a first run (continuing grows a
    /// whole previous vocabulary) and no admission or eviction policy (whose caps rank every
    /// value of a field against every other).
    static func applies(_ comm: Communicator, previous: PreviousSchema?, options: ReadOptions) -> Bool {
        comm.isDistributed && previous == nil && options.vocabularyPolicy?.isActive != true
    }

}

extension VocabularyShard.Fitted {
    /// The schema the job trains with, and its shard when the vocabularies stay split: `split`
    /// is asked with the table's rows; when it answers false, every rank receives the whole
    /// vocabularies (the slices joined) and no shard. Collective.
    func decided(by split: (Int) throws -> Bool) throws -> (schema: FeatureSchema, shard: VocabularyShard?) {
        if try split(schema.embeddingRows) { return (schema, shard) }
        var whole = schema
        whole.fields = try shard.gathered(everyRank: true)!
        return (whole, nil)
    }
}
