import Foundation

/// Training rows streamed from a `funnel prepare` cache through a shuffle buffer, so a data set
/// of any size trains in bounded memory.
///
/// Each epoch visits the cache's row groups in a seeded random order, encodes them with the
/// schema and collects `bufferRows` rows; the trainer then shuffles and trains on that buffer
/// before the next is filled. Rows therefore mix across the groups of one buffer (and groups
/// across the epoch), the usual block-plus-buffer shuffle of streaming trainers. The mapped pages
/// of a group are released once it is encoded.
public final class StreamingCacheChunks: TrainingChunks {
    public let cache: ColumnarCache
    public let schema: FeatureSchema
    public let options: ReadOptions
    public let bufferRows: Int
    /// A sharded data-parallel run (`options.shard` set): each rank streams its rows of every
    /// group, the ranks agree on when a buffer is full, and each buffer comes as a label view.
    public var communicator = Communicator.single
    /// The job's split vocabularies (`schema` holds counts only): each group encoded collectively.
    public var vocabulary: VocabularyShard?
    /// Reads the next buffer on a second thread while this one trains (`ChunkPrefetch`; one
    /// process only). Off: each buffer is read after the last has trained — the same chunks.
    public var prefetch = true
    /// Rows and clicked rows after the read policy (counted by `fitSchema`).
    public let rows: Int
    public let clicks: Int

    public init(cache: ColumnarCache, schema: FeatureSchema, options: ReadOptions, bufferRows: Int, rows: Int, clicks: Int) {
        self.cache = cache
        self.schema = schema
        self.options = options
        self.bufferRows = max(1, bufferRows)
        self.rows = rows
        self.clicks = clicks
    }

    /// Rows of a shuffle buffer that keeps peak RSS under `budgetMiB`: what is resident now
    /// (vocabularies, network, validation rows) plus Adam's two moments per parameter, then
    /// every buffered row's ids, dense values, labels and bag offsets, counted twice (the buffer being filled
    /// and the chunk being trained). Multi-valued columns add their values per row (id and
    /// weight) the same twice, plus one row group being decoded (`groupRows` rows of raw keys,
    /// weights and their encoding, with growth slack: 32 bytes a value); a buffer fills by whole
    /// groups, so it may hold one group more than the rows returned. At least 10,000 rows, else
    /// the budget is refused. Rows that carry requests add each row's request key and request
    /// index (twice) and the request batching's per-row scratch (`requests`: 80 bytes a row, measured).
    /// The two buffers are what a prefetched run holds: the chunk training and the next one read;
    /// `prefetch` adds the trainer's per-chunk scratch (its row order, the request batching's
    /// grouping: 32 bytes a row), which then lives beside a whole second buffer (measured: 19 bytes
    /// a row over the budget at 42.3M impressions without it).
    public static func bufferRows(budgetMiB budget: Double, network: FunnelNetwork, schema: FeatureSchema, totalRows: Int,
                                  bagValuesPerRow: Double = 0, groupRows: Int = 0, ranks: Int = 1, requests: Bool = false,
                                  prefetch: Bool = false) throws -> Int {
        let parameters = network.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let decoding = Double(groupRows) * bagValuesPerRow * 32 / 1_048_576
        // bf16 GEMMs run oneDNN matmul primitives made per row count (request batches vary in
        // rows), whose kernels and converted inputs grow after the plan is made: 74 MiB measured
        // at 9M impressions, batch 2,000 (FP32 products run without them).
        let bf16 = network.gemm.precision == .bf16 ? 96.0 : 0
        let fixed = ResourceUsage.committedMegabytes + Double(parameters) * 8 / 1_048_576 + 64 + decoding + bf16
        // Multi-valued columns add their mean values per row (id and weight each) and each row's
        // offset in every bag (kept even where a request's lists are held once per request).
        let bagRow = 8 * Int(bagValuesPerRow.rounded(.up)) + 4 * schema.layout.bagFields.count
        let ownRow = Double(2 * (4 * (schema.fields.count + schema.dense.count) + 24) + 2 * bagRow
                            + (requests ? 2 * 12 + 56 : 0) + (prefetch && ranks == 1 ? 32 : 0))
        // Sharded over `ranks`: a rank holds the features of 1/ranks of a buffer's rows, and the
        // label view of all of them (labels, source row, its index, the gathered message: ~64 bytes).
        let perRow = (ranks > 1 ? ownRow / Double(ranks) + 64 : ownRow) / 1_048_576
        // A buffer is emitted once it holds `rows` rows, after a whole group: up to one group more.
        let rows = Int((budget - fixed) / perRow) - groupRows
        guard rows >= 10_000 else {
            throw FunnelError(String(format: "a memory budget of %.0f MiB is too small: the model, its optimizer state and the "
                                     + "vocabularies need about %.0f MiB, and a useful shuffle buffer (10,000 rows) %.0f more",
                                     budget, fixed, 10_000 * perRow))
        }
        return min(rows, totalRows)
    }

    /// One streaming pass over the cache fitting the schema (vocabularies, dense moments) exactly as
    /// `FeatureSchema.fit` would on the whole table, and counting rows and clicks.
    /// `splittingVocabularies`: as `DatasetLoader.loadForTraining`'s — asked with the table's
    /// rows whether the vocabularies stay split over the ranks (`vocabulary` then set).
    /// `threads`: row groups decoded at once (each on its own thread); they are added in group
    /// order, so the counts and moments — the schema, bit for bit — are the one-thread pass's.
    public static func fitSchema(_ cache: ColumnarCache, options: ReadOptions, minCount: Int, communicator: Communicator = .single,
                                 growing previous: PreviousSchema? = nil, splittingVocabularies split: ((Int) throws -> Bool)? = nil,
                                 threads: Int = 1) throws
        -> (schema: FeatureSchema, rows: Int, clicks: Int, conversions: Int, report: ReadReport, maxBagValues: Int, bagValues: Int,
            vocabulary: VocabularyShard?)
    {
        var maxBagValues = 0, bagValues = 0
        try options.hashBuckets.check(cache.layout, file: cache.path)
        var layout = cache.layout
        layout.maxValues = layout.multiValued.isEmpty ? nil : options.maxValues
        var acc = FeatureSchema.Accumulator(layout: layout)
        var report = cache.footer.report
        report.inconsistentDropped = 0
        report.inconsistentKept = 0
        try forEachGroupInOrder(cache, layout: layout, options: options, threads: threads) { part in
            report.inconsistentDropped += part.report.inconsistentDropped
            report.inconsistentKept += part.report.inconsistentKept
            acc.add(part)
            maxBagValues = max(maxBagValues, part.maxBagValues)
            bagValues += part.bagValuesHeld
        }
        // One schema from every rank's rows; the read counts and bag sizes of all of them.
        let splitting = VocabularyShard.applies(communicator, previous: previous, options: options) ? split : nil
        let fit = try splitting.map { _ in try VocabularyShard.fit(acc, minCount: minCount, options: options, communicator: communicator, file: cache.path) }
        if fit == nil { acc = try acc.merged(across: communicator) }
        var counts = [Double(report.inconsistentDropped), Double(report.inconsistentKept), Double(bagValues)]
        try communicator.allreduceSum(&counts)
        (report.inconsistentDropped, report.inconsistentKept, bagValues) = (Int(counts[0]), Int(counts[1]), Int(counts[2]))
        maxBagValues = try communicator.maximum(maxBagValues)
        try options.sharedVocabularies.check(acc.layout, hashing: options.hashBuckets)
        if let fit, let splitting {
            guard fit.rows > 0 else { throw DataError(file: cache.path, "no usable rows") }
            (report.rowsKept, report.schemaNotes) = (fit.rows, fit.hashNotes)
            let (schema, shard) = try fit.decided(by: splitting)
            return (schema, fit.rows, fit.clicks, fit.conversions, report, maxBagValues, bagValues, shard)
        }
        guard acc.rows > 0 else { throw DataError(file: cache.path, "no usable rows") }
        report.rowsKept = acc.rows
        report.schemaNotes = acc.hashNotes(options.hashBuckets)
        let (schema, notes) = try FeatureSchema.fitted(acc, minCount: minCount, options: options, growing: previous, file: cache.path)
        report.schemaNotes += notes
        return (schema, acc.rows, acc.clicks, acc.conversions, report, maxBagValues, bagValues, nil)
    }

    /// Every row group of `cache` (as `readGroup` reads it) to `body`, in group order, decoded
    /// `threads` at a time: decoding (and the shared-record join) is most of a schema pass's work;
    /// `body` runs on this thread. Each group's pages are released once `body` has it.
    static func forEachGroupInOrder(_ cache: ColumnarCache, layout: TableLayout, options: ReadOptions, threads: Int,
                                    _ body: (RawTable) throws -> Void) throws {
        let groups = cache.footer.groups.count, width = max(1, threads)
        var first = 0
        while first < groups {
            let n = min(width, groups - first)
            var parts = [Result<RawTable, Error>?](repeating: nil, count: n)
            parts.withUnsafeMutableBufferPointer { out in
                Parallel.forEach(n) { w in out[w] = Result { try readGroup(first + w, of: cache, layout: layout, options: options) } }
            }
            for w in 0..<n {
                try body(parts[w]!.get())
                parts[w] = nil
                cache.release(group: first + w)
            }
            first += n
        }
    }

    public var fields: Int { schema.fields.count }
    public var denseCount: Int { schema.dense.count }
    public var isSingleChunk: Bool { false }

    public func estimatedRows(of space: SampleSpace, config: ModelConfig) -> Int {
        switch space {
        case .all: return rows
        case .clicked: return clicks
        case .clickedWithSampledNegatives: return clicks + Int(Double(rows - clicks) * config.negativeRate)
        case .clickedWithOversampledConversions: return clicks
        }
    }

    public func forEachChunk(epoch: Int, stage: Int, seed: UInt64, _ body: (EncodedDataset) throws -> Void) throws {
        var order = (0..<Int32(cache.footer.groups.count)).map { $0 }
        var rng = RandomSource(seed: seed, stream: 30_000 + UInt64(stage) * 1_000 + UInt64(epoch))
        rng.shuffle(&order)
        guard prefetch && !communicator.isDistributed && vocabulary == nil else {
            return try fillBuffers(order, checkCancelled: {}) { make in try body(make()) }
        }
        try ChunkPrefetch.run(produce: { handoff in
            try self.fillBuffers(order, checkCancelled: handoff.checkCancelled) { make in try handoff.hand(make) }
        }, consume: body)
    }

    /// Reads and encodes the groups in `order`, calling `emit` with the maker of each full
    /// buffer's chunk (and of the last, partial one); the maker joins the groups collected and lets
    /// go of them, so `emit` trains on the chunk alone.
    private func fillBuffers(_ order: [Int32], checkCancelled: () throws -> Void,
                             emit: (() throws -> EncodedDataset) throws -> Void) throws {
        // Encoded groups are collected and joined once a buffer is full (bags, when the cache
        // has multi-valued columns, travel with their rows).
        var parts: [EncodedDataset] = [], buffered = 0
        // A sharded run: this rank's rows of the buffer, ordered as one process orders them
        // (group position in this epoch's order, then source row).
        var orderKeys: [Int64] = []
        func flush() throws {
            guard buffered > 0 else { return }
            try emit {
                // The pieces live only until they are joined: the chunk trains without them.
                let taken = parts, keys = orderKeys
                parts = []; buffered = 0; orderKeys = []
                let chunk = taken.count == 1 ? taken[0] : taken.isEmpty ? emptyChunk() : EncodedDataset.concatenated(taken)
                return try ShardView.labelView(of: chunk, communicator: communicator, orderKeys: keys)
            }
        }
        for (position, g) in order.enumerated() {
            try checkCancelled()
            let raw = try Self.readGroup(Int(g), of: cache, layout: schema.layout, options: options)
            cache.release(group: Int(g))
            let encoded = try vocabulary?.encode(raw, schema: schema) ?? schema.encode(raw)
            var rows = encoded.rowCount
            // Every rank takes the same decision: a buffer is full on the rows of all of them.
            var count = [Double(rows)]
            try communicator.allreduceSum(&count, kind: .control)
            rows = Int(count[0])
            // The label view of a sharded run orders its rows by these; one rank's rows are in order already.
            if communicator.isDistributed { orderKeys += encoded.sourceRows.map { Int64(position) << 32 | Int64($0) } }
            guard rows > 0 else { continue }
            if encoded.rowCount > 0 { parts.append(encoded) }
            buffered += rows
            if buffered >= bufferRows { try flush() }
        }
        try flush()
    }

    /// Row group `g` as the reading command sees it: its inconsistent-row policy applied (a
    /// cache keeps every row), this rank's rows only in a sharded run.
    static func readGroup(_ g: Int, of cache: ColumnarCache, layout: TableLayout, options: ReadOptions) throws -> RawTable {
        try options.inconsistent.apply(to: cache.group(g, layout: layout, requireLabels: true, dayColumn: options.dayColumn,
                                                      requestLevel: options.requestLevel && options.dayColumn == nil)).shard(options.shard)
    }

    /// A rank's share of a buffer with none of its rows.
    private func emptyChunk() -> EncodedDataset {
        EncodedDataset(rowCount: 0, fields: fields, denseCount: denseCount, ids: [], dense: [], click: [], conversion: [], sourceRows: [],
                       bags: schema.layout.bagFields.map { EncodedBag(field: $0, offsets: [0], ids: [], weights: []) })
    }
}
