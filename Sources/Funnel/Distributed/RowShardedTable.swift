import Foundation

/// Which rank owns each row of a row-sharded embedding table, and where the row sits there.
///
/// Row r belongs to rank r mod N, at local index r / N. Vocabularies number ids by descending
/// frequency, so the hottest ids are the lowest rows: dealing rows round-robin gives every rank
/// an equal share of the hot rows as well as of the row count, which balances both the memory
/// and the all-to-all traffic per step. (A hash of the id balances the count only in
/// expectation and leaves the few hottest rows wherever they land; a contiguous range per rank
/// would send every hot id to rank 0.) Hashed fields (`--hash-buckets`) have no frequency order,
/// and buckets are uniform, so round-robin is as good as any map there.
public struct RowOwnership: Sendable, Equatable {
    public let rows: Int
    public let ranks: Int

    public init(rows: Int, ranks: Int) {
        precondition(rows >= 0 && ranks >= 1)
        self.rows = rows
        self.ranks = ranks
    }

    @inline(__always) public func owner(of row: Int32) -> Int { Int(row) % ranks }
    @inline(__always) public func localIndex(of row: Int32) -> Int32 { row / Int32(ranks) }
    @inline(__always) public func globalRow(local: Int32, rank: Int) -> Int32 { local * Int32(ranks) + Int32(rank) }
    /// How many rows rank `rank` owns: ⌈(rows − rank) / N⌉.
    public func localRows(rank: Int) -> Int { rank < rows ? (rows - rank + ranks - 1) / ranks : 0 }
}

/// One embedding table sharded row-wise over the job's ranks: each rank holds only the rows it
/// owns (`slice`, a sparse `Parameter` of `localRows × dim` whose Adam moments the optimizer
/// allocates there too — optimizer state lives only at the owner).
///
/// A step touches few rows of a large table, so rows travel, not the table:
/// - `gather`: each rank deduplicates the rows its share of the batch needs, sends each owner
///   the ones it owns (one all-to-all of ids), the owners answer with the rows' values (one
///   all-to-all of floats), and the rows are laid out in the order asked for.
/// - `reduceGradients`: each rank sends its touched rows' gradients to their owners only; an
///   owner sums what arrives in rank order into its slice's gradient (rows in first-seen order),
///   exactly the order the replicated path's all-gather sums in, so `AdamOptimizer.apply([slice])`
///   gives the owned rows the values every replica would hold.
public final class RowShardedTable {
    public let name: String
    public let ownership: RowOwnership
    public let dim: Int
    public let communicator: Communicator
    public let slice: Parameter
    /// The merge of the row gradients arriving at this owner, by local row.
    private var sum: RowGradientSum

    /// `initial(row)` gives a row's starting values (`dim` of them) — the replicated table's
    /// initialiser, so a sharded table starts where a replica would.
    public init(name: String, rows: Int, dim: Int, communicator: Communicator, maxTouchedRows: Int,
                initial: (Int32) -> [Float]) {
        self.name = name
        self.dim = dim
        self.communicator = communicator
        ownership = RowOwnership(rows: rows, ranks: communicator.size)
        let local = ownership.localRows(rank: communicator.rank)
        slice = Parameter(name: name, shape: [local, dim], sparse: true, maxTouchedRows: maxTouchedRows * communicator.size, workers: 1,
                          totalRows: local)
        for l in 0..<local {
            let values = initial(ownership.globalRow(local: Int32(l), rank: communicator.rank))
            precondition(values.count == dim)
            (slice.value.base + l * dim).update(from: values, count: dim)
        }
        sum = RowGradientSum(tableRows: local)
    }

    /// The values of rows `wanted` (any order, repeats allowed), `[wanted.count × dim]` row-major.
    public func gather(_ wanted: [Int32]) throws -> [Float] {
        let (unique, position) = Self.deduplicated(wanted)
        let asked = try sendToOwners(unique.map { ($0, [Float]()) })
        // Answer every rank with the rows it asked this rank for, in its order.
        var answers = [[UInt8]](repeating: [], count: communicator.size)
        for (r, rows) in asked.enumerated() {
            var w = ByteWriter()
            for (row, _) in rows {
                let at = Int(ownership.localIndex(of: row)) * dim
                w.put(raw: UnsafeRawBufferPointer(start: slice.value.base + at, count: 4 * dim))
            }
            answers[r] = w.bytes
        }
        let received = try communicator.exchange(answers, kind: .sparse)
        // Rows come back per owner in the order this rank listed them.
        var cursors = received.map { _ in 0 }
        var values = [Float](repeating: 0, count: unique.count * dim)
        for (k, row) in unique.enumerated() {
            let owner = ownership.owner(of: row)
            let bytes = received[owner]
            guard cursors[owner] + 4 * dim <= bytes.count else { throw FunnelError("rank \(owner) sent \(name) rows cut short") }
            bytes.withUnsafeBytes { raw in
                for j in 0..<dim { values[k * dim + j] = raw.loadUnaligned(fromByteOffset: cursors[owner] + 4 * j, as: Float.self) }
            }
            cursors[owner] += 4 * dim
        }
        return position.flatMap { values[Int($0) * dim..<(Int($0) + 1) * dim] }
    }

    /// Sends row gradients (`rows` unique, `gradients` `[rows.count × dim]`) to their owners,
    /// which sum them in rank order into the slice's gradient (`slice.touchedRows`: local rows,
    /// first seen; `slice.rowGradients`: their sums).
    public func reduceGradients(rows: [Int32], gradients: [Float]) throws {
        precondition(gradients.count == rows.count * dim)
        let received = try sendToOwners(rows.enumerated().map { k, row in (row, Array(gradients[(k * dim)..<((k + 1) * dim)])) })
        let out = slice.rowGradients.base
        let capacity = slice.rowGradients.count / max(1, dim)
        for part in received {
            for (row, g) in part {
                try sum.add(ownership.localIndex(of: row), width: dim, into: out, capacity: capacity,
                            overflow: "the ranks' batch touches more \(name) rows than its gradient buffer holds") { g[$0] }
            }
        }
        slice.touchedRows = sum.finish()
    }

    /// Each (row, payload) to the row's owner in one all-to-all; returns, per sending rank, the
    /// rows (and payloads of `dim` floats, or none) it sent here, in its order. Rows a rank
    /// receives are checked to be its own.
    private func sendToOwners(_ items: [(Int32, [Float])]) throws -> [[(Int32, [Float])]] {
        var blocks = [ByteWriter](repeating: ByteWriter(), count: communicator.size)
        var counts = [Int](repeating: 0, count: communicator.size)
        for (row, _) in items { counts[ownership.owner(of: row)] += 1 }
        let width = items.first?.1.count ?? 0
        for (r, n) in counts.enumerated() { blocks[r].putCount(n); blocks[r].putCount(width) }
        for (row, payload) in items {
            let r = ownership.owner(of: row)
            blocks[r].put(row)
            payload.withUnsafeBytes { blocks[r].put(raw: $0) }
        }
        let received = try communicator.exchange(blocks.map(\.bytes), kind: .sparse)
        return try received.enumerated().map { r, bytes in
            try bytes.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s \(name) rows")
                let n = try cursor.readCount(elementBytes: 4)
                let w = Int(try cursor.read(Int64.self))
                guard w == 0 || w == dim else { throw FunnelError("rank \(r) sent \(name) rows of \(w) values, not \(dim)") }
                return try (0..<n).map { _ in
                    let row = try cursor.read(Int32.self)
                    guard row >= 0, Int(row) < ownership.rows, ownership.owner(of: row) == communicator.rank else {
                        throw FunnelError("rank \(r) sent \(name) row \(row), which rank \(communicator.rank) does not own")
                    }
                    let payload = try cursor.region(4 * w)
                    return (row, (0..<w).map { payload.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) })
                }
            }
        }
    }

    /// The distinct rows of `wanted` in first-seen order, and each wanted row's position among them.
    static func deduplicated(_ wanted: [Int32]) -> (unique: [Int32], position: [Int32]) {
        var index: [Int32: Int32] = [:]
        var unique: [Int32] = []
        let position = wanted.map { row -> Int32 in
            if let k = index[row] { return k }
            index[row] = Int32(unique.count)
            unique.append(row)
            return Int32(unique.count - 1)
        }
        return (unique, position)
    }
}
