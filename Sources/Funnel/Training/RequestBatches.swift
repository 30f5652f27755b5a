/// Batches of whole requests: the rows a stage visits, grouped by request, shuffled a request at
/// a time, and cut into batches that close at the first request boundary at or after the batch
/// size — so a batch is never smaller than the batch size (but the last) nor larger by more
/// than one request, and a request's impressions share one batch (`RequestSharing` computes
/// their request part once). A request with more rows than a batch — or than `pieceRows`,
/// when set — is cut into pieces (`piecesCut` counts the requests cut). Rows a sample space
/// dropped stay dropped: what remains of each request is grouped as it is.
///
/// Why cap pieces: sparse Adam moves a touched row by about the learning rate per step, whatever
/// the size of its gradient, so a user whose impressions all share one batch gets one step per
/// epoch where shuffled rows give it one per impression; smaller pieces trade sharing for steps.
struct RequestBatches {
    /// The rows in batch order and where each batch ends.
    var rows: [Int32]
    var ends: [Int]
    /// Requests longer than a batch, cut.
    var piecesCut: Int

    /// Groups `rows` (in their order) by `keys[row]`, cuts groups into pieces of at most
    /// `pieceRows` (default and at most: `batchSize`), shuffles the pieces with `rng` when
    /// `shuffle`, and closes batches at `batchSize`.
    init(_ rows: [Int32], keys: [Int64], batchSize: Int, pieceRows: Int? = nil, shuffle: Bool, rng: inout RandomSource) {
        let piece = min(batchSize, max(1, pieceRows ?? batchSize))
        // Group slots in first-appearance order, then rows grouped in CSR form (stable within a group).
        var slotOfKey: [Int64: Int32] = [:]
        var slot = [Int32](repeating: 0, count: rows.count), sizes: [Int32] = []
        for (k, r) in rows.enumerated() {
            let key = keys[Int(r)]
            if let s = slotOfKey[key] { slot[k] = s; sizes[Int(s)] += 1; continue }
            slotOfKey[key] = Int32(sizes.count)
            slot[k] = Int32(sizes.count)
            sizes.append(1)
        }
        var starts = [Int](repeating: 0, count: sizes.count + 1)
        for g in 0..<sizes.count { starts[g + 1] = starts[g] + Int(sizes[g]) }
        var grouped = [Int32](repeating: 0, count: rows.count), fill = starts
        for (k, r) in rows.enumerated() { grouped[fill[Int(slot[k])]] = r; fill[Int(slot[k])] += 1 }
        // Pieces: each group, cut into runs of at most a batch.
        var pieces: [Range<Int>] = []
        var cut = 0
        for g in 0..<sizes.count {
            var lo = starts[g]
            if starts[g + 1] - lo > piece { cut += 1 }
            while lo < starts[g + 1] { pieces.append(lo..<min(starts[g + 1], lo + piece)); lo += piece }
        }
        if shuffle { rng.shuffle(&pieces) }
        var out: [Int32] = [], ends: [Int] = []
        out.reserveCapacity(rows.count)
        for p in pieces {
            out.append(contentsOf: grouped[p])
            if out.count - (ends.last ?? 0) >= batchSize { ends.append(out.count) }
        }
        if out.count > (ends.last ?? 0) { ends.append(out.count) }
        (self.rows, self.ends, piecesCut) = (out, ends, cut)
    }

    /// The largest batch these rules can make: a batch one row short of full, then a whole piece.
    static func largestBatch(batchSize: Int) -> Int { 2 * batchSize - 1 }

    /// The rows a training batch can reach: `largestBatch` when batches hold whole requests
    /// (`sharing`), else the batch size.
    static func batchRows(batchSize: Int, sharing: Bool) -> Int { sharing ? largestBatch(batchSize: batchSize) : batchSize }
}
