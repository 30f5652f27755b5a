import Foundation

/// Prediction by a network whose tables are row-sharded: every block of rows fetches its rows
/// from their owners first (`ShardedEmbeddings.prepare`), a collective — so every rank runs the
/// same number of blocks (the most any rank needs; a rank out of rows takes part with none).
/// An unsharded network predicts as `predict` does.
extension FunnelNetwork {
    /// pCTR, pCVR and pCTCVR for every row of `data` (this rank's rows; the ranks may hold
    /// different ones).
    public func predictCollectively(_ data: EncodedDataset) throws -> Predictions {
        guard let sharded else { return predict(data) }
        var out = Predictions(count: data.rowCount)
        let batches = (0..<workers).map { _ in makeBatch() }
        try out.withOutputs { pc, pv, pcv in
            try forEachBlock(of: data.rowCount, batches: batches, sharded: sharded, fill: { b, start, n in
                b.fill(from: data, start: start, count: n)
            }) { b, start, w in
                self.predictFilled(b, at: start, worker: w, ctr: pc, cvr: pv, ctcvr: pcv)
            }
        }
        return out
    }

    /// pCTR for `rows` of `data` (UNBIAS's propensities).
    public func predictCTRCollectively(_ data: EncodedDataset, rows: [Int32]) throws -> [Float] {
        guard let sharded else { return predictCTR(data, rows: rows) }
        guard ctrTower != nil else { return [] }
        var out = [Float](repeating: 0, count: rows.count)
        let batches = (0..<workers).map { _ in makeBatch() }
        try rows.withUnsafeBufferPointer { r in
            try out.withUnsafeMutableBufferPointer { o in
                let dst = o.baseAddress!
                try forEachBlock(of: rows.count, batches: batches, sharded: sharded, fill: { b, start, n in
                    b.fill(from: data, rows: UnsafeBufferPointer(rebasing: r[start..<(start + n)]))
                }) { b, start, w in
                    _ = self.forward(b, heads: [.ctr], worker: w)
                    let logits = self.scratch.workers[w].logits[Head.ctr.rawValue]
                    for i in 0..<b.count { dst[start + i] = Sigmoid.value(logits[i]) }
                }
            }
        }
        return out
    }

    /// `n` rows in blocks of one batch per worker: fill the block's batches, fetch their rows
    /// (collective), run them concurrently. `fill(batch, start, count)`, `run(batch, start, worker)`.
    private func forEachBlock(of n: Int, batches: [Batch], sharded: ShardedEmbeddings,
                              fill: (Batch, Int, Int) -> Void, run: @escaping (Batch, Int, Int) -> Void) throws {
        let block = workers * maxBatch
        let rounds = try sharded.communicator.maximum((n + block - 1) / block)
        for round in 0..<rounds {
            let lo = min(n, round * block)
            let starts = (0..<workers).map { min(n, lo + $0 * maxBatch) }
            let active = starts.filter { $0 < n }.count
            for w in 0..<active { fill(batches[w], starts[w], min(maxBatch, n - starts[w])) }
            try sharded.prepare(batches[0..<active])
            Parallel.forEach(active) { w in run(batches[w], starts[w], w) }
        }
    }
}
