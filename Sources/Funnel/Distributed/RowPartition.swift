import Foundation

/// Where each rank's rows sit in one machine's table: rank r holds the contiguous rows
/// `offsets[r] ..< offsets[r] + counts[r]` of a table of `total` rows, in that table's order.
///
/// The GBDT path reads contiguous shards (`ReadOptions.Shard.contiguousOf`), and every filter it
/// applies (training days, liked rows) keeps file order, so each rank's rows of any derived table
/// stay one contiguous run: a row's position in one machine's table is `offset + local index`.
/// That position is what out-of-fold assignment, LightGBM's bin sample and its bagging key on.
public struct RowPartition: Sendable, Equatable {
    public var counts: [Int]
    public var rank: Int

    /// LightGBM's bagging block (`bagging_rand_block_`): rows drawn by one generator.
    public static let baggingBlock = 1024

    public var total: Int { counts.reduce(0, +) }
    public var offsets: [Int] {
        var o = [Int](repeating: 0, count: counts.count)
        for r in 1..<max(1, counts.count) { o[r] = o[r - 1] + counts[r - 1] }
        return o
    }
    public var offset: Int { offsets[rank] }
    public var count: Int { counts[rank] }
    /// This rank's rows as positions in one machine's table.
    public var positions: Range<Int> { offset..<(offset + count) }

    /// One process holding every row.
    public init(rows: Int) {
        counts = [rows]
        rank = 0
    }

    init(counts: [Int], rank: Int) {
        self.counts = counts
        self.rank = rank
    }

    /// Every rank's row count, gathered (each rank passes its own; a lone process holds every row).
    public static func gather(localRows: Int, _ comm: Communicator) throws -> RowPartition {
        return RowPartition(counts: try comm.allgather([Int64(localRows)]).map { Int($0[0]) }, rank: comm.rank)
    }

    /// The same rows spread evenly over the ranks, each rank starting on a multiple of `block`
    /// (rank r at ⌊r·n/N / block⌋·block), so LightGBM's per-block bagging generators
    /// (`bagging_seed + block`) draw on every rank exactly what they draw on one machine. When the
    /// rows were already spread evenly (one file read in contiguous runs), fewer than `block` rows
    /// move per boundary; a file sorted by day moves more (all training rows may sit on a few ranks).
    public func balanced(block: Int) -> RowPartition {
        let n = total, size = counts.count
        let starts = (0...size).map { r in r == size ? n : ((r * n / size) / block) * block }
        return RowPartition(counts: (0..<size).map { starts[$0 + 1] - starts[$0] }, rank: rank)
    }
}

/// Rows of a feature matrix (with their labels) moved from one partition of a table to another.
enum RowRebalancing {
    /// This rank's rows under `target`, given its rows under `source` (both partitions of the
    /// same table, ranks in order). Rows travel in one personalised exchange.
    static func move(_ matrix: FeatureMatrix, labels: [Float], from source: RowPartition, to target: RowPartition,
                     _ comm: Communicator) throws -> (FeatureMatrix, [Float]) {
        precondition(matrix.rows == source.count && labels.count == source.count && source.total == target.total)
        if source == target { return (matrix, labels) }
        let d = matrix.columns
        let mine = source.positions, targetOffsets = target.offsets
        var blocks: [[UInt8]] = []
        for q in 0..<target.counts.count {
            let theirs = targetOffsets[q]..<(targetOffsets[q] + target.counts[q])
            let lo = max(mine.lowerBound, theirs.lowerBound), hi = min(mine.upperBound, theirs.upperBound)
            guard lo < hi else { blocks.append([]); continue }
            let a = lo - mine.lowerBound, b = hi - mine.lowerBound
            var block = matrix.values[(a * d)..<(b * d)].withUnsafeBytes { Array($0) }
            block += labels[a..<b].withUnsafeBytes { Array($0) }
            blocks.append(block)
        }
        var values: [Float] = [], out: [Float] = []
        values.reserveCapacity(target.count * d)
        for block in try comm.exchange(blocks) where !block.isEmpty {
            let floats: [Float] = Communicator.values(block)
            let rows = floats.count / (d + 1)
            values += floats[0..<(rows * d)]
            out += floats[(rows * d)...]
        }
        precondition(out.count == target.count, "rows lost while rebalancing")
        return (FeatureMatrix(rows: target.count, names: matrix.names, values: values), out)
    }
}

extension FeatureMatrix {
    /// An order-sensitive checksum that adds up across ranks: Σ over rows of
    /// FNV(row bytes) · (2·position + 1), wrapping. The same matrix split over any number of
    /// contiguous shards sums to the same value, so N ranks can prove they computed one
    /// machine's features (`model.json`: `train_features_checksum`).
    func positionalChecksum(firstPosition: Int) -> UInt64 {
        let d = columns
        var sum: UInt64 = 0
        values.withUnsafeBytes { raw in
            for r in 0..<rows {
                let row = UnsafeRawBufferPointer(rebasing: raw[(r * d * 4)..<((r + 1) * d * 4)])
                sum = sum &+ Checksum.fnv64Words(row) &* UInt64(2 * (firstPosition + r) + 1)
            }
        }
        return sum
    }

    /// `positionalChecksum` of the whole table, summed over the ranks, as 16 hex digits.
    static func checksum(of local: FeatureMatrix, partition: RowPartition, _ comm: Communicator) throws -> String {
        let mine = local.positionalChecksum(firstPosition: partition.offset)
        let sum = try comm.allgather([Int64(bitPattern: mine)]).reduce(0) { $0 &+ UInt64(bitPattern: $1[0]) }
        return String(format: "%016llx", sum)
    }
}
