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

/// One rank's share of a row-sharded table, as an `EmbeddingLayer` holds it: its rows
/// (`ownership`, `rank`), and `lookupRows`, the most distinct rows one step of this rank
/// touches — the size of the table the layer computes on.
public struct TableShard: Sendable, Equatable {
    public var ownership: RowOwnership
    public var rank: Int
    public var lookupRows: Int

    public init(ownership: RowOwnership, rank: Int, lookupRows: Int) {
        self.ownership = ownership
        self.rank = rank
        self.lookupRows = lookupRows
    }
}

/// The exchanges of one embedding table sharded row-wise over the job's ranks: each rank holds
/// only the rows it owns (`slice`, a sparse `Parameter` of `localRows × dim` whose Adam moments
/// the optimizer allocates there too — optimizer state lives only at the owner).
///
/// A step touches few rows of a large table, so rows travel, not the table:
/// - `fetch`: each rank sends each owner the distinct rows it needs (one all-to-all of ids),
///   the owners answer with the rows' values (one all-to-all of floats).
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

    /// Exchanges for `slice`, this rank's rows of a table of `ownership.rows`.
    public init(slice: Parameter, ownership: RowOwnership, communicator: Communicator) {
        precondition(ownership.ranks == communicator.size && slice.shape[0] == ownership.localRows(rank: communicator.rank))
        name = slice.name
        dim = slice.rowWidth
        self.ownership = ownership
        self.communicator = communicator
        self.slice = slice
        sum = RowGradientSum(tableRows: slice.shape[0])
    }

    /// A slice of its own, rows starting at `initial(row)` (a replica's values).
    public convenience init(name: String, rows: Int, dim: Int, communicator: Communicator, maxTouchedRows: Int,
                            initial: (Int32) -> [Float]) {
        let ownership = RowOwnership(rows: rows, ranks: communicator.size)
        let local = ownership.localRows(rank: communicator.rank)
        let slice = Parameter(name: name, shape: [local, dim], sparse: true, maxTouchedRows: maxTouchedRows * communicator.size,
                              totalRows: local)
        for l in 0..<local {
            let values = initial(ownership.globalRow(local: Int32(l), rank: communicator.rank))
            precondition(values.count == dim)
            (slice.value.base + l * dim).update(from: values, count: dim)
        }
        self.init(slice: slice, ownership: ownership, communicator: communicator)
    }

    /// The values of rows `wanted` (any order, repeats allowed), `[wanted.count × dim]` row-major.
    public func gather(_ wanted: [Int32]) throws -> [Float] {
        let (unique, position) = Self.deduplicated(wanted)
        var values = [Float](repeating: 0, count: unique.count * dim)
        try values.withUnsafeMutableBufferPointer { try fetch(unique, into: $0.baseAddress!) }
        return position.flatMap { values[Int($0) * dim..<(Int($0) + 1) * dim] }
    }

    /// Rows `unique` (distinct, global) into `out` `[unique.count × dim]`, from their owners.
    /// Collective: every rank calls it once per step, with its own rows (possibly none).
    public func fetch(_ unique: [Int32], into out: UnsafeMutablePointer<Float>) throws {
        var asked = [[Int32]](repeating: [], count: communicator.size)
        var placed = [[Int32]](repeating: [], count: communicator.size)
        for (k, row) in unique.enumerated() {
            let o = ownership.owner(of: row)
            asked[o].append(row)
            placed[o].append(Int32(k))
        }
        let requests = try communicator.exchange(asked.map(Self.bytes), kind: .sparse)
        // Answer every rank with the rows it asked this rank for, in its order.
        let answers = try requests.enumerated().map { r, bytes -> [UInt8] in
            let rows: [Int32] = Communicator.values(bytes)
            var answer = [UInt8](repeating: 0, count: rows.count * dim * 4)
            try answer.withUnsafeMutableBytes { raw in
                let dst = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                for (k, row) in rows.enumerated() {
                    let l = try localRow(row, from: r)
                    (dst + k * dim).update(from: slice.value.base + l * dim, count: dim)
                }
            }
            return answer
        }
        // Each owner answers exactly the rows asked of it: the sizes are known on both sides.
        let received = try communicator.exchange(answers, expecting: placed.map { $0.count * dim * 4 }, kind: .sparse)
        for (o, bytes) in received.enumerated() {
            guard bytes.count == placed[o].count * dim * 4 else { throw FunnelError("rank \(o) sent \(name) rows cut short") }
            bytes.withUnsafeBytes { raw in
                let src = raw.baseAddress?.assumingMemoryBound(to: Float.self)
                for (k, at) in placed[o].enumerated() { (out + Int(at) * dim).update(from: src! + k * dim, count: dim) }
            }
        }
    }

    /// Sends row gradients (`rows` distinct, global; `gradients` `[rows.count × dim]`) to their
    /// owners, which sum them in rank order into the slice's gradient (`slice.touchedRows`: local
    /// rows, first seen; `slice.rowGradients`: their sums). Collective.
    public func reduceGradients(rows: [Int32], gradients: UnsafePointer<Float>) throws {
        var ids = [[Int32]](repeating: [], count: communicator.size)
        var values = [[Float]](repeating: [], count: communicator.size)
        for (k, row) in rows.enumerated() {
            let o = ownership.owner(of: row)
            ids[o].append(row)
            values[o].append(contentsOf: UnsafeBufferPointer(start: gradients + k * dim, count: dim))
        }
        let blocks = (0..<communicator.size).map { o in
            var w = ByteWriter()
            w.putCount(ids[o].count)
            w.bytes += Self.bytes(ids[o]) + Self.bytes(values[o])
            return w.bytes
        }
        let received = try communicator.exchange(blocks, kind: .sparse)
        let out = slice.rowGradients.base
        let capacity = slice.rowGradients.count / max(1, dim)
        for (r, bytes) in received.enumerated() {
            try bytes.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw, what: "rank \(r)'s \(name) gradients")
                let n = try cursor.readCount(elementBytes: 4 + 4 * dim)
                let rowBytes = try cursor.region(4 * n), grads = try cursor.region(4 * n * dim)
                for k in 0..<n {
                    let l = try localRow(rowBytes.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self), from: r)
                    try sum.add(Int32(l), width: dim, into: out, capacity: capacity,
                                overflow: "the ranks' batch touches more \(name) rows than its gradient buffer holds") {
                        grads.loadUnaligned(fromByteOffset: 4 * (k * dim + $0), as: Float.self)
                    }
                }
            }
        }
        slice.touchedRows = sum.finish()
    }

    public func reduceGradients(rows: [Int32], gradients: [Float]) throws {
        precondition(gradients.count == rows.count * dim)
        try gradients.withUnsafeBufferPointer { try reduceGradients(rows: rows, gradients: $0.baseAddress!) }
    }

    /// Where global row `row`, sent by rank `r`, sits in this rank's slice; a row out of range
    /// or owned by another rank is refused.
    private func localRow(_ row: Int32, from r: Int) throws -> Int {
        guard row >= 0, Int(row) < ownership.rows, ownership.owner(of: row) == communicator.rank else {
            throw FunnelError("rank \(r) sent \(name) row \(row), which rank \(communicator.rank) does not own")
        }
        return Int(ownership.localIndex(of: row))
    }

    static func bytes<T: BitwiseCopyable>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

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
