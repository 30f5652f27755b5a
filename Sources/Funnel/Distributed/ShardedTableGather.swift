import Foundation

/// The whole model on rank 0 once a row-sharded run has trained: every rank sends its slices
/// (and their Adam moments) to rank 0, which lays the rows out at their global places in a
/// replicated network of the same configuration — the network `TrainedModel` saves as one
/// `weights.safetensors`, as a replicated run would have.
extension FunnelNetwork {
    /// Collective. Rank 0: a replicated network holding this one's weights (its moments too when
    /// `moments`); the other ranks: nil. An unsharded network is its own replica.
    public func gatheredReplica(schema: FeatureSchema, moments: Bool) throws -> FunnelNetwork? {
        guard let sharded else { return self }
        let comm = sharded.communicator
        let whole = comm.isRoot ? try FunnelNetwork(config: config, schema: schema, maxBatch: 1, workers: 1) : nil
        for (layer, exchange) in sharded.tables {
            let target = whole?.parameters.first { $0.name == layer.table.name }
            try exchange.gatherToRoot(into: target, moments: moments)
        }
        guard let whole else { return nil }
        for (p, q) in zip(parameters, whole.parameters) where !sharded.owns(p) {
            precondition(p.name == q.name && p.count == q.count)
            q.value.base.update(from: p.value.base, count: p.count)
            guard moments, let m = p.moment1, let v = p.moment2 else { continue }
            q.moment1 = FloatBuffer(count: p.count)
            q.moment2 = FloatBuffer(count: p.count)
            q.moment1!.base.update(from: m.base, count: p.count)
            q.moment2!.base.update(from: v.base, count: p.count)
        }
        return whole
    }
}

extension RowShardedTable {
    /// Rows per message: each rank sends at most this many of its rows to rank 0 per round, so
    /// no message nears MPI's 2 GiB count limit and rank 0 holds one round's bytes at a time.
    static let gatherRows = 1 << 20

    /// Messages a rank holding `local` rows sends, and the rows of message `round`.
    static func rounds(_ local: Int) -> Int { (local + gatherRows - 1) / gatherRows }
    static func rows(ofRound round: Int, _ local: Int) -> Range<Int> {
        let lo = min(local, round * gatherRows)
        return lo..<min(local, lo + gatherRows)
    }

    /// Collective. Every rank's rows (values, then Adam's moments when `moments` and the slice
    /// has them) into rank 0's `target`, a whole table; other ranks pass nil.
    func gatherToRoot(into target: Parameter?, moments: Bool) throws {
        let withMoments = moments && slice.moment1 != nil
        if withMoments, let target {
            target.moment1 = FloatBuffer(count: target.count)
            target.moment2 = FloatBuffer(count: target.count)
        }
        let local = slice.shape[0]
        let rounds = try communicator.maximum(Self.rounds(local))
        for round in 0..<rounds {
            let mine = Self.rows(ofRound: round, local)
            var block: [UInt8] = []
            for source in [slice.value] + (withMoments ? [slice.moment1!, slice.moment2!] : []) {
                block += UnsafeRawBufferPointer(start: source.base + mine.lowerBound * dim, count: mine.count * dim * 4)
            }
            var blocks = [[UInt8]](repeating: [], count: communicator.size)
            blocks[0] = block
            let received = try communicator.exchange(blocks, kind: .control)
            guard let target else { continue }
            for (r, bytes) in received.enumerated() { try place(bytes, from: r, round: round, into: target, moments: withMoments) }
        }
    }

    /// Rank `r`'s rows of one gather round at their global rows of `target` (values, m, v).
    private func place(_ bytes: [UInt8], from r: Int, round: Int, into target: Parameter, moments: Bool) throws {
        let sent = Self.rows(ofRound: round, ownership.localRows(rank: r))
        let lo = sent.lowerBound, n = sent.count
        let parts = [target.value] + (moments ? [target.moment1!, target.moment2!] : [])
        guard bytes.count == n * dim * 4 * parts.count else { throw FunnelError("rank \(r) sent \(name)'s rows cut short") }
        bytes.withUnsafeBytes { raw in
            let src = raw.baseAddress?.assumingMemoryBound(to: Float.self)
            for (k, dst) in parts.enumerated() {
                for l in 0..<n {
                    let row = Int(ownership.globalRow(local: Int32(lo + l), rank: r))
                    (dst.base + row * dim).update(from: src! + (k * n + l) * dim, count: dim)
                }
            }
        }
    }
}
