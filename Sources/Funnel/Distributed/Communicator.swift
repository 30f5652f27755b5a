import Foundation

/// What a collective carries, for the communication figures (`bytesSent`, `calls`): the
/// per-step dense gradient bucket, the sparse embedding rows, and control messages (counts,
/// checks, row views). Its raw value is the key `--json` reports.
public enum CollectiveKind: String, Codable, Sendable {
    case dense, sparse, control
}

/// The processes of a job, for the collectives training needs, over a `CollectiveTransport`:
/// Open MPI's `MPI_COMM_WORLD` under mpirun (`FunnelDistributed`), `.single` for a lone process
/// (every collective the identity), or `InProcessRanks` (threads as ranks, for tests). Library
/// code calls collectives unconditionally; collective calls must be made by every rank in the
/// same order. The communication figures (`stats`) are counted here, whatever the transport.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let transport: any CollectiveTransport
    /// Bytes this rank has handed to collectives, by kind (for the bench's communication figures).
    public private(set) var bytesSent: [String: Int] = [:]
    /// Seconds spent inside collectives.
    public private(set) var seconds = 0.0
    /// Collective calls, by kind.
    public private(set) var calls: [String: Int] = [:]

    public var isRoot: Bool { rank == 0 }
    /// More than one rank: the data is sharded and the collectives move bytes.
    public var isDistributed: Bool { size > 1 }
    /// No launcher started this process's ranks: what a lone `funnel train` runs on (no
    /// `distributed` figures are reported).
    public var isSingleProcess: Bool { transport is SingleProcessTransport }

    public init(transport: any CollectiveTransport) {
        self.transport = transport
        rank = transport.rank
        size = transport.size
    }

    /// A lone process: one rank, every collective the identity.
    public static var single: Communicator { Communicator(transport: SingleProcessTransport()) }

    /// The ranks' environment, as `mpirun` sets it (Open MPI; PMI for other launchers).
    public static var launchedSize: Int? {
        let env = ProcessInfo.processInfo.environment
        return (env["OMPI_COMM_WORLD_SIZE"] ?? env["PMI_SIZE"]).flatMap(Int.init)
    }

    /// This process's rank as the launcher numbered it, before MPI is started (nil outside one).
    public static var launchedRank: Int? {
        let env = ProcessInfo.processInfo.environment
        return (env["OMPI_COMM_WORLD_RANK"] ?? env["PMI_RANK"]).flatMap(Int.init)
    }

    private func timed<T>(_ kind: CollectiveKind, bytes: Int, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        bytesSent[kind.rawValue, default: 0] += bytes
        calls[kind.rawValue, default: 0] += 1
        return try body()
    }

    /// In place: every element becomes its sum over the ranks.
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, kind: CollectiveKind = .dense) throws {
        try timed(kind, bytes: 4 * count) { try transport.allreduceSum(buffer, count: count) }
    }

    /// Starts an in-place sum (`buffer` untouched until `finishStarted`); the collectives called
    /// in between overlap it. The seconds counted are those spent starting and waiting.
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, kind: CollectiveKind = .dense) throws {
        try timed(kind, bytes: 4 * count) { try transport.startAllreduceSum(buffer, count: count) }
    }

    public func finishStarted() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        try transport.finishStarted()
    }

    public func allreduceSum(_ values: inout [Double], kind: CollectiveKind = .control) throws {
        let n = values.count
        try timed(kind, bytes: 8 * n) {
            try values.withUnsafeMutableBufferPointer { try transport.allreduceSum($0.baseAddress!, count: n) }
        }
    }

    /// Every rank's `values` (the same count on each), rank after rank.
    public func allgather(_ values: [Int64], kind: CollectiveKind = .control) throws -> [[Int64]] {
        var out = [Int64](repeating: 0, count: values.count * size)
        try timed(kind, bytes: 8 * values.count) {
            try values.withUnsafeBufferPointer { v in
                try out.withUnsafeMutableBufferPointer {
                    try transport.allgather(v.baseAddress!, count: values.count, into: $0.baseAddress!)
                }
            }
        }
        return (0..<size).map { r in Array(out[(r * values.count)..<((r + 1) * values.count)]) }
    }

    /// The largest (smallest) of every rank's `value`, on every rank.
    public func maximum(_ value: Int) throws -> Int {
        var v = Int64(value)
        try timed(.control, bytes: 8) { try transport.allreduceMaximum(&v) }
        return Int(v)
    }

    public func minimum(_ value: Int) throws -> Int {
        var v = Int64(value)
        try timed(.control, bytes: 8) { try transport.allreduceMinimum(&v) }
        return Int(v)
    }

    /// This rank's rows of a file read by every rank (`ReadOptions.shard`; nil for one rank, which reads every row).
    public var shard: ReadOptions.Shard? { isDistributed ? ReadOptions.Shard(index: rank, count: size) : nil }

    /// This rank's contiguous run of a file of `rows()` data rows (nil for one rank; `rows` is
    /// only counted when there are several).
    public func contiguousShard(of rows: () throws -> Int) rethrows -> ReadOptions.Shard? {
        isDistributed ? ReadOptions.Shard(index: rank, count: size, contiguousOf: try rows()) : nil
    }

    /// Every rank's byte block (of any length), rank after rank.
    public func allgatherBytes(_ bytes: [UInt8], kind: CollectiveKind = .control) throws -> [[UInt8]] {
        let counts = try allgather([Int64(bytes.count)], kind: kind).map { Int($0[0]) }
        var displacements = [Int64](repeating: 0, count: size)
        for r in 1..<max(1, size) { displacements[r] = displacements[r - 1] + Int64(counts[r - 1]) }
        let total = counts.reduce(0, +)
        var out = [UInt8](repeating: 0, count: max(1, total))
        let c64 = counts.map(Int64.init)
        try timed(kind, bytes: bytes.count) {
            try bytes.withUnsafeBytes { send in
                try out.withUnsafeMutableBytes { recv in
                    try transport.allgatherv(UnsafeRawBufferPointer(send), into: recv, counts: c64, displacements: displacements)
                }
            }
        }
        return (0..<size).map { r in Array(out[Int(displacements[r])..<(Int(displacements[r]) + counts[r])]) }
    }

    /// Every rank's array of plain values (of any length), rank after rank.
    public func allgather<T: BitwiseCopyable>(values: [T], kind: CollectiveKind = .control) throws -> [[T]] {
        try allgatherBytes(values.withUnsafeBytes { Array($0) }, kind: kind).map(Self.values)
    }

    /// Personalised exchange: `blocks[r]` goes to rank r; returns the block each rank sent here,
    /// rank after rank (the reduce-by-key and row-rebalancing step of the GBDT path).
    public func exchange(_ blocks: [[UInt8]], kind: CollectiveKind = .control) throws -> [[UInt8]] {
        precondition(blocks.count == size)
        // Every rank learns what it will receive from each rank (one int64 per pair).
        let matrix = try allgather(blocks.map { Int64($0.count) }, kind: kind)
        return try exchange(blocks, expecting: (0..<size).map { Int(matrix[$0][rank]) }, kind: kind)
    }

    /// `exchange` when each rank already knows how many bytes every rank sends it (`expected[r]`
    /// from rank r: the rows it asked for, say): one collective instead of two.
    public func exchange(_ blocks: [[UInt8]], expecting expected: [Int], kind: CollectiveKind = .control) throws -> [[UInt8]] {
        precondition(blocks.count == size && expected.count == size)
        let sendCounts = blocks.map { Int64($0.count) }
        let recvCounts = expected.map(Int64.init)
        func displacements(_ c: [Int64]) -> [Int64] {
            var d = [Int64](repeating: 0, count: c.count)
            for r in 1..<max(1, c.count) { d[r] = d[r - 1] + c[r - 1] }
            return d
        }
        let sendDisplacements = displacements(sendCounts), recvDisplacements = displacements(recvCounts)
        let send = blocks.flatMap { $0 }
        var recv = [UInt8](repeating: 0, count: max(1, Int(recvCounts.reduce(0, +))))
        // Counted: what leaves this rank (its block to itself is a local copy).
        try timed(kind, bytes: send.count - blocks[rank].count) {
            try send.withUnsafeBytes { s in
                try recv.withUnsafeMutableBytes { r in
                    try transport.alltoallv(UnsafeRawBufferPointer(s), sendCounts: sendCounts, sendDisplacements: sendDisplacements,
                                            into: r, recvCounts: recvCounts, recvDisplacements: recvDisplacements)
                }
            }
        }
        return (0..<size).map { Array(recv[Int(recvDisplacements[$0])..<Int(recvDisplacements[$0] + recvCounts[$0])]) }
    }

    /// Plain values back from their bytes.
    static func values<T: BitwiseCopyable>(_ bytes: [UInt8]) -> [T] {
        let n = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: n) { out, count in
            bytes.withUnsafeBytes { src in
                if n > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<(n * MemoryLayout<T>.stride)])) }
            }
            count = n
        }
    }

    /// Ends every rank of the job (mpirun reports it and exits non-zero).
    public func abort(code: Int32 = 1) -> Never {
        transport.abort(code: code)
    }

    /// Refuses to go on unless every rank holds the same values (a configuration, a schema, row
    /// counts): ranks that disagree would train different models. Compared as JSON with sorted
    /// keys (dictionaries hash in a per-process order).
    public func checkSame(_ parts: [any Encodable], what: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var bytes: [UInt8] = []
        for part in parts { bytes += try enc.encode(part) }
        let all = try allgatherBytes(bytes)
        if let r = all.firstIndex(where: { $0 != all[0] }) {
            throw FunnelError("rank \(r) disagrees with rank 0 on the \(what); every rank must run the same command on the same data")
        }
    }

    /// What this rank has exchanged so far.
    public var stats: CommunicationStats {
        let steps = calls["dense"] ?? 0
        return CommunicationStats(ranks: size, steps: steps, bytesSent: bytesSent, seconds: seconds,
                                  denseBytesPerStep: steps > 0 ? Double(bytesSent["dense"] ?? 0) / Double(steps) : 0,
                                  sparseBytesPerStep: steps > 0 ? Double(bytesSent["sparse"] ?? 0) / Double(steps) : 0)
    }

    public func finalize() {
        transport.finalize()
    }
}

/// Rank 0's communication in a data-parallel run (`funnel train --json`: `distributed`).
public struct CommunicationStats: Codable, Sendable {
    public var ranks: Int
    /// Optimizer steps (one dense all-reduce each).
    public var steps: Int
    /// Bytes this rank handed to collectives, by kind: dense gradients, sparse (embedding) rows,
    /// control (configuration checks, message sizes).
    public var bytesSent: [String: Int]
    /// Seconds inside collectives (waiting for the slowest rank included).
    public var seconds: Double
    public var denseBytesPerStep: Double
    public var sparseBytesPerStep: Double

    enum CodingKeys: String, CodingKey {
        case ranks, steps, seconds
        case bytesSent = "bytes_sent"
        case denseBytesPerStep = "dense_bytes_per_step"
        case sparseBytesPerStep = "sparse_bytes_per_step"
    }
}
