import CMPI
import Foundation

/// What a collective carries, for the communication figures (`bytesSent`, `calls`): the
/// per-step dense gradient bucket, the sparse embedding rows, and control messages (counts,
/// checks, row views). Its raw value is the key `--json` reports.
public enum CollectiveKind: String, Codable, Sendable {
    case dense, sparse, control
}

/// The processes of a data-parallel job (Open MPI's `MPI_COMM_WORLD`), for the collectives
/// training needs. One per process, created by `Communicator.start`; nil when the process runs
/// alone. Collective calls must be made by every rank in the same order.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Bytes this rank has handed to collectives, by kind (for the bench's communication figures).
    public private(set) var bytesSent: [String: Int] = [:]
    /// Seconds spent inside collectives.
    public private(set) var seconds = 0.0
    /// Collective calls, by kind.
    public private(set) var calls: [String: Int] = [:]

    public var isRoot: Bool { rank == 0 }

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

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

    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: Communicator?

    /// The job's communicator: MPI is started when the process runs under `mpirun` with more
    /// than one rank, or when `explicit` (`--distributed`) — which outside `mpirun` is an error.
    /// Nil for a lone process.
    public static func start(explicit: Bool) throws -> Communicator? {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        guard let size = launchedSize else {
            if explicit {
                throw FunnelError("--distributed runs under mpirun (e.g. mpirun -np 2 funnel train …); "
                                  + "this process has no MPI environment (OMPI_COMM_WORLD_SIZE / PMI_SIZE)")
            }
            return nil
        }
        guard size > 1 || explicit else { return nil }
        if funnel_mpi_is_initialized() == 0 {
            try check(funnel_mpi_init(), "MPI_Init")
        }
        let c = Communicator(rank: Int(funnel_mpi_rank()), size: Int(funnel_mpi_size()))
        shared = c
        return c
    }

    static func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        funnel_mpi_error_string(rc, &text, Int32(text.count))
        throw FunnelError("\(what) failed: \(String(cString: text))")
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
        try timed(kind, bytes: 4 * count) { try Self.check(funnel_mpi_allreduce_sum_float(buffer, Int64(count)), "MPI_Allreduce") }
    }

    public func allreduceSum(_ values: inout [Double], kind: CollectiveKind = .control) throws {
        let n = values.count
        try timed(kind, bytes: 8 * n) {
            try values.withUnsafeMutableBufferPointer { try Self.check(funnel_mpi_allreduce_sum_double($0.baseAddress!, Int64(n)), "MPI_Allreduce") }
        }
    }

    /// Every rank's `values` (the same count on each), rank after rank.
    public func allgather(_ values: [Int64], kind: CollectiveKind = .control) throws -> [[Int64]] {
        var out = [Int64](repeating: 0, count: values.count * size)
        try timed(kind, bytes: 8 * values.count) {
            try values.withUnsafeBufferPointer { v in
                try out.withUnsafeMutableBufferPointer {
                    try Self.check(funnel_mpi_allgather_int64(v.baseAddress!, Int64(values.count), $0.baseAddress!), "MPI_Allgather")
                }
            }
        }
        return (0..<size).map { r in Array(out[(r * values.count)..<((r + 1) * values.count)]) }
    }

    /// The largest (smallest) of every rank's `value`, on every rank.
    public func maximum(_ value: Int) throws -> Int {
        var v = Int64(value)
        try timed(.control, bytes: 8) { try Self.check(funnel_mpi_allreduce_max_int64(&v, 1), "MPI_Allreduce") }
        return Int(v)
    }

    public func minimum(_ value: Int) throws -> Int {
        var v = Int64(value)
        try timed(.control, bytes: 8) { try Self.check(funnel_mpi_allreduce_min_int64(&v, 1), "MPI_Allreduce") }
        return Int(v)
    }

    /// This rank's rows of a file read by every rank (`ReadOptions.shard`).
    public var shard: ReadOptions.Shard { ReadOptions.Shard(index: rank, count: size) }

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
                    try Self.check(funnel_mpi_allgatherv_bytes(send.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int64(bytes.count),
                                                               recv.baseAddress!, c64, displacements), "MPI_Allgatherv")
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
        let sendCounts = blocks.map { Int64($0.count) }
        // Every rank learns what it will receive from each rank (one int64 per pair).
        let matrix = try allgather(sendCounts, kind: kind)
        let recvCounts = (0..<size).map { matrix[$0][rank] }
        func displacements(_ c: [Int64]) -> [Int64] {
            var d = [Int64](repeating: 0, count: c.count)
            for r in 1..<max(1, c.count) { d[r] = d[r - 1] + c[r - 1] }
            return d
        }
        let sendDisplacements = displacements(sendCounts), recvDisplacements = displacements(recvCounts)
        let send = blocks.flatMap { $0 }
        var recv = [UInt8](repeating: 0, count: max(1, Int(recvCounts.reduce(0, +))))
        try timed(kind, bytes: send.count) {
            try send.withUnsafeBytes { s in
                try recv.withUnsafeMutableBytes { r in
                    try Self.check(funnel_mpi_alltoallv_bytes(s.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, sendCounts, sendDisplacements,
                                                              r.baseAddress!, recvCounts, recvDisplacements), "MPI_Alltoallv")
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
        funnel_mpi_abort(code)
        exit(code)
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
        Self.lock.lock()
        defer { Self.lock.unlock() }
        _ = funnel_mpi_finalize()
        Self.shared = nil
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
