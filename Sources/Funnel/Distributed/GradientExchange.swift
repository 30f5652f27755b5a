import Foundation

/// The *reduce* of a data-parallel step across ranks, after each rank has reduced its own
/// workers' gradients into worker 0's slot: afterwards every rank holds the gradient of the
/// whole global batch, so every rank's Adam applies the same update and the replicas stay equal.
///
/// Dense gradients go in buckets, not a call per tensor: the towers' (towers, experts, gates,
/// with the batch loss) in one `MPI_Iallreduce` started as soon as the bodies' backward is done,
/// the few below the bodies (cross layers, attention units) in one more after the embeddings'. Embedding gradients are exchanged sparsely: each rank sends only the rows its share
/// of the batch touched (ids and row gradients, one all-gather for all tables), and every rank
/// sums them in rank order, so the result is identical on every rank. All-gather rather than a
/// reduce-scatter by id ownership: a batch touches a few thousand rows of tables of millions,
/// so the rows two ranks share are few and summing a gathered set costs less than the extra
/// round of an owner-based exchange at the rank counts one host or a small cluster runs.
final class GradientExchange {
    let communicator: Communicator
    /// The towers' dense gradients and the loss (in flight between `startTowers` and `finish`),
    /// and the dense gradients below the bodies.
    private var bucket = FloatBuffer(count: 0), inputBucket = FloatBuffer(count: 0)
    private var started: [Parameter] = []
    /// Per sparse parameter (by name): the merge of its rows' gradients.
    private var sums: [String: RowGradientSum] = [:]

    init(communicator: Communicator) {
        self.communicator = communicator
    }

    /// Overlap the dense all-reduce with the embedding exchanges (`--no-overlap-collectives`
    /// turns it off, to measure what it saves).
    var overlaps = true

    /// Starts summing the towers' gradients (`towers`' dense parameters, every gradient final)
    /// and `loss` over the ranks: their bucket's all-reduce is in flight until `finish`, while the
    /// embeddings' backward runs (`--no-overlap-collectives`: summed here, blocking).
    func startTowers(_ towers: [Parameter], loss: Double) throws {
        started = towers.filter { !$0.isSparse }
        let total = Self.pack(started, loss: loss, into: &bucket)
        if overlaps { try communicator.startAllreduceSum(bucket.base, count: total) } else {
            try communicator.allreduceSum(bucket.base, count: total, kind: .dense)
        }
    }

    /// Sums the rest of the step's gradients (`inputs`: the embeddings' tables and the dense
    /// layers below the bodies) over the ranks, with `alongside` (a row-sharded table's
    /// exchanges) and the sparse all-gather, then waits for the towers' bucket; returns the
    /// summed loss. Every rank makes the calls in this order and no sum changes its order, so
    /// the result is the same bit for bit on every rank.
    func finish(_ inputs: [Parameter], alongside: () throws -> Void = {}) throws -> Double {
        let dense = inputs.filter { !$0.isSparse }
        if !dense.isEmpty {
            let total = Self.pack(dense, loss: nil, into: &inputBucket)
            try communicator.allreduceSum(inputBucket.base, count: total, kind: .dense)
            _ = Self.unpack(dense, from: inputBucket)
        }
        try alongside()
        try reduceSparse(inputs.filter(\.isSparse))
        if overlaps { try communicator.finishStarted() }
        return Self.unpack(started, from: bucket)
    }

    /// Sums `parameters`' gradients and `loss` over the ranks, in place (the towers and the
    /// rest in one call: what a step that does not split its backward uses).
    func reduce(_ parameters: [Parameter], loss: inout Double, alongside: () throws -> Void = {}) throws {
        try startTowers(parameters.filter { !$0.isSparse }, loss: loss)
        loss = try finish(parameters.filter(\.isSparse), alongside: alongside)
    }

    /// Every rank's touched rows of the replicated sparse parameters, summed in rank order.
    private func reduceSparse(_ sparse: [Parameter]) throws {
        guard !sparse.isEmpty else { return }
        let all = try communicator.allgatherBytes(Self.sparseMessage(sparse), kind: .sparse)
        // One buffer for every rank's message, so the cursors read them in place side by side.
        let joined = all.flatMap { $0 }
        try joined.withUnsafeBytes { raw in
            var start = 0
            var cursors = all.enumerated().map { r, bytes in
                defer { start += bytes.count }
                return ByteCursor(UnsafeRawBufferPointer(rebasing: raw[start..<(start + bytes.count)]), what: "rank \(r)'s gradient message")
            }
            for p in sparse { try merge(p, from: &cursors) }
        }
    }

    /// Dense gradients (and the loss, when given) into `bucket` (one all-reduce for all); returns its length.
    private static func pack(_ dense: [Parameter], loss: Double?, into bucket: inout FloatBuffer) -> Int {
        let total = dense.reduce(0) { $0 + $1.count } + (loss == nil ? 0 : 1)
        if bucket.count != total { bucket = FloatBuffer(count: total) }
        var at = 0
        for p in dense {
            (bucket.base + at).update(from: p.grad.base, count: p.count)
            at += p.count
        }
        if let loss { bucket.base[at] = Float(loss) }
        return total
    }

    /// The summed bucket back into the dense gradients; returns the summed loss (after them).
    private static func unpack(_ dense: [Parameter], from bucket: FloatBuffer) -> Double {
        var at = 0
        for p in dense {
            p.grad.base.update(from: bucket.base + at, count: p.count)
            at += p.count
        }
        return at < bucket.count ? Double(bucket.base[at]) : 0
    }

    /// This rank's message: per sparse parameter, its touched-row count, rows and row gradients.
    static func sparseMessage(_ sparse: [Parameter]) -> [UInt8] {
        var message = ByteWriter()
        for p in sparse {
            let rows = p.touchedRows
            message.putCount(rows.count)
            rows.withUnsafeBytes { message.put(raw: $0) }
            message.put(raw: UnsafeRawBufferPointer(start: p.rowGradients.base, count: 4 * rows.count * p.rowWidth))
        }
        return message.bytes
    }

    /// `p`'s part of every rank's message, summed into its row gradients in rank order: a row
    /// touched by several ranks is added up; `p.touchedRows` becomes the union, first-seen order.
    private func merge(_ p: Parameter, from cursors: inout [ByteCursor]) throws {
        let width = p.rowWidth, tableRows = p.shape.first ?? 0
        // Taken out of the dictionary while in use: a copy left there would make the first write
        // copy the whole row → slot table (O(table rows) per step, 56 MB at 14M rows).
        var sum = sums.removeValue(forKey: p.name) ?? RowGradientSum(tableRows: tableRows)
        let out = p.rowGradients.base
        let capacity = p.rowGradients.count / max(1, width)
        for r in cursors.indices {
            let n = try cursors[r].readCount(elementBytes: 4 + 4 * width)
            let rows = try cursors[r].region(4 * n), grads = try cursors[r].region(4 * n * width)
            for k in 0..<n {
                let row = rows.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)
                guard row >= 0 && Int(row) < tableRows else { throw FunnelError("rank \(r) sent an embedding row out of range") }
                try sum.add(row, width: width, into: out, capacity: capacity,
                            overflow: "the ranks' batch touches more embedding rows than the gradient buffer holds") {
                    grads.loadUnaligned(fromByteOffset: 4 * (k * width + $0), as: Float.self)
                }
            }
        }
        p.touchedRows = sum.finish()
        sums[p.name] = sum
    }
}
