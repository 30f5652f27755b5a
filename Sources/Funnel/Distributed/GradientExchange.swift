import Foundation

/// The *reduce* of a data-parallel step across ranks, after each rank has reduced its own
/// workers' gradients into worker 0's slot: afterwards every rank holds the gradient of the
/// whole global batch, so every rank's Adam applies the same update and the replicas stay equal.
///
/// Dense gradients (towers, experts, gates) go in one bucket — every dense parameter of the
/// stage packed into one buffer, plus the batch loss — and one `MPI_Allreduce`, not a call per
/// tensor. Embedding gradients are exchanged sparsely: each rank sends only the rows its share
/// of the batch touched (ids and row gradients, one all-gather for all tables), and every rank
/// sums them in rank order, so the result is identical on every rank. All-gather rather than a
/// reduce-scatter by id ownership: a batch touches a few thousand rows of tables of millions,
/// so the rows two ranks share are few and summing a gathered set costs less than the extra
/// round of an owner-based exchange at the rank counts one host or a small cluster runs.
final class GradientExchange {
    let communicator: Communicator
    private var bucket: [Float] = []
    /// Per sparse parameter (by name): embedding row → slot in the merged gradient, -1 when
    /// untouched (reset after each step, so a step costs O(rows touched)).
    private var slots: [String: [Int32]] = [:]

    init(communicator: Communicator) {
        self.communicator = communicator
    }

    /// Sums `parameters`' gradients and `loss` over the ranks, in place.
    func reduce(_ parameters: [Parameter], loss: inout Double) throws {
        let dense = parameters.filter { !$0.isSparse }, sparse = parameters.filter(\.isSparse)
        let total = dense.reduce(0) { $0 + $1.count } + 1
        if bucket.count != total { bucket = [Float](repeating: 0, count: total) }
        try bucket.withUnsafeMutableBufferPointer { b in
            var at = 0
            for p in dense {
                (b.baseAddress! + at).update(from: p.grad.base, count: p.count)
                at += p.count
            }
            b[at] = Float(loss)
            try communicator.allreduceSum(b.baseAddress!, count: total, kind: .dense)
            at = 0
            for p in dense {
                p.grad.base.update(from: b.baseAddress! + at, count: p.count)
                at += p.count
            }
            loss = Double(b[at])
        }
        guard !sparse.isEmpty else { return }
        // One message: per sparse parameter, its touched-row count, rows and row gradients.
        var message: [UInt8] = []
        for p in sparse {
            let rows = p.touchedRows
            withUnsafeBytes(of: Int64(rows.count).littleEndian) { message.append(contentsOf: $0) }
            rows.withUnsafeBytes { message.append(contentsOf: $0) }
            message.append(contentsOf: UnsafeRawBufferPointer(start: p.rowGradients.base, count: 4 * rows.count * p.rowWidth))
        }
        let all = try communicator.allgatherBytes(message, kind: .sparse)
        var cursors = [Int](repeating: 0, count: all.count)
        for p in sparse {
            let width = p.rowWidth, tableRows = p.shape.first ?? 0
            var slot = slots[p.name] ?? [Int32](repeating: -1, count: tableRows)
            var merged: [Int32] = []
            let out = p.rowGradients.base
            let capacity = p.rowGradients.count / max(1, width)
            for (r, bytes) in all.enumerated() {
                try bytes.withUnsafeBytes { raw in
                    var at = cursors[r]
                    guard at + 8 <= raw.count else { throw FunnelError("rank \(r) sent a malformed gradient message") }
                    let n = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
                    at += 8
                    guard n >= 0, at + n * 4 + n * width * 4 <= raw.count else { throw FunnelError("rank \(r) sent a malformed gradient message") }
                    let rowsAt = at, gradsAt = at + 4 * n
                    for k in 0..<n {
                        let row = raw.loadUnaligned(fromByteOffset: rowsAt + 4 * k, as: Int32.self)
                        guard row >= 0 && Int(row) < tableRows else { throw FunnelError("rank \(r) sent an embedding row out of range") }
                        var s = Int(slot[Int(row)])
                        if s < 0 {
                            s = merged.count
                            guard s < capacity else { throw FunnelError("the ranks' batch touches more embedding rows than the gradient buffer holds") }
                            slot[Int(row)] = Int32(s)
                            merged.append(row)
                            for j in 0..<width { out[s * width + j] = raw.loadUnaligned(fromByteOffset: gradsAt + 4 * (k * width + j), as: Float.self) }
                        } else {
                            for j in 0..<width { out[s * width + j] += raw.loadUnaligned(fromByteOffset: gradsAt + 4 * (k * width + j), as: Float.self) }
                        }
                    }
                    cursors[r] = gradsAt + 4 * n * width
                }
            }
            for row in merged { slot[Int(row)] = -1 }
            slots[p.name] = slot
            p.touchedRows = merged
        }
    }
}
