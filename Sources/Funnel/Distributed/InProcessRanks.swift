import Foundation

/// N ranks as N threads of one process, meeting at a shared rendezvous: the collectives of
/// `Communicator` without mpirun, so the exchanges built on them (gradient reduce, label views,
/// vocabulary merges, row rebalancing) are unit-tested against what they must compute.
///
/// Each collective is two barriers: every rank deposits its contribution, all read every
/// contribution and compute their own result, and nobody deposits the next one before all have
/// read. A rank that never arrives (it threw) makes the others throw after `timeout` seconds
/// instead of hanging the test.
public final class InProcessRanks: @unchecked Sendable {
    public let size: Int
    let timeout: Double
    private let condition = NSCondition()
    private var slots: [Any?]
    private var arrived = 0, generation = 0

    public init(size: Int, timeout: Double = 60) {
        precondition(size >= 1)
        self.size = size
        self.timeout = timeout
        slots = [Any?](repeating: nil, count: size)
    }

    /// Runs `body` on every rank (one thread each) and returns each rank's result, rank after
    /// rank; the first rank's error (by rank) is rethrown.
    public static func run<T>(size: Int, timeout: Double = 60, _ body: @escaping @Sendable (Communicator) throws -> T) throws -> [T] {
        let ranks = InProcessRanks(size: size, timeout: timeout)
        let results = ResultSlots<T>(size)
        let group = DispatchGroup()
        for r in 0..<size {
            group.enter()
            let thread = Thread {
                let outcome = Result { try body(Communicator(transport: InProcessTransport(rank: r, ranks: ranks))) }
                results.set(r, outcome)
                group.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        return try results.values.map { try $0!.get() }
    }

    /// Each rank's outcome, written by its own thread.
    private final class ResultSlots<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [Result<T, Error>?]
        init(_ n: Int) { slots = Array(repeating: nil, count: n) }
        func set(_ r: Int, _ v: Result<T, Error>) { lock.lock(); slots[r] = v; lock.unlock() }
        var values: [Result<T, Error>?] { lock.lock(); defer { lock.unlock() }; return slots }
    }

    /// Deposits `value` as `rank`'s contribution and returns every rank's, rank after rank.
    func share(_ value: Any, from rank: Int) throws -> [Any] {
        condition.lock()
        slots[rank] = value
        condition.unlock()
        try barrier()
        condition.lock()
        let all = slots.map { $0! }
        condition.unlock()
        try barrier()
        return all
    }

    private func barrier() throws {
        condition.lock()
        defer { condition.unlock() }
        let g = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        let deadline = Date().addingTimeInterval(timeout)
        while generation == g {
            if !condition.wait(until: deadline) && generation == g {
                throw FunnelError("an in-process rank waited \(Int(timeout)) s for the others at a collective")
            }
        }
    }
}

/// One rank's side of `InProcessRanks`.
final class InProcessTransport: CollectiveTransport, @unchecked Sendable {
    let rank: Int
    let ranks: InProcessRanks
    var size: Int { ranks.size }

    init(rank: Int, ranks: InProcessRanks) {
        self.rank = rank
        self.ranks = ranks
    }

    private func gather<T>(_ values: [T]) throws -> [[T]] {
        try ranks.share(values, from: rank).map { $0 as! [T] }
    }

    /// Every rank's buffer, summed element by element in rank order, into `buffer`.
    private func sumInRankOrder<T: FloatingPoint>(_ buffer: UnsafeMutablePointer<T>, count: Int) throws {
        let all = try gather(Array(UnsafeBufferPointer(start: buffer, count: count)))
        for i in 0..<count { buffer[i] = all.dropFirst().reduce(all[0][i]) { $0 + $1[i] } }
    }

    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws { try sumInRankOrder(buffer, count: count) }
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws { try sumInRankOrder(buffer, count: count) }

    func allreduceMaximum(_ value: inout Int64) throws { value = try gather([value]).map { $0[0] }.max()! }
    func allreduceMinimum(_ value: inout Int64) throws { value = try gather([value]).map { $0[0] }.min()! }

    func allgather(_ values: UnsafePointer<Int64>, count: Int, into out: UnsafeMutablePointer<Int64>) throws {
        for (r, theirs) in try gather(Array(UnsafeBufferPointer(start: values, count: count))).enumerated() {
            (out + r * count).update(from: theirs, count: count)
        }
    }

    func allgatherv(_ send: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, counts: [Int64], displacements: [Int64]) throws {
        for (r, theirs) in try gather(Array(send)).enumerated() {
            guard theirs.count == Int(counts[r]) else { throw FunnelError("rank \(r) sent \(theirs.count) bytes, \(counts[r]) expected") }
            if !theirs.isEmpty {
                theirs.withUnsafeBytes { (out.baseAddress! + Int(displacements[r])).copyMemory(from: $0.baseAddress!, byteCount: theirs.count) }
            }
        }
    }

    func alltoallv(_ send: UnsafeRawBufferPointer, sendCounts: [Int64], sendDisplacements: [Int64],
                   into out: UnsafeMutableRawBufferPointer, recvCounts: [Int64], recvDisplacements: [Int64]) throws {
        // Each rank deposits the block it addresses to every rank; each takes the ones for it.
        let blocks = (0..<size).map { Array(send[Int(sendDisplacements[$0])..<Int(sendDisplacements[$0] + sendCounts[$0])]) }
        for (r, theirs) in try ranks.share(blocks, from: rank).map({ $0 as! [[UInt8]] }).enumerated() {
            let block = theirs[rank]
            guard block.count == Int(recvCounts[r]) else { throw FunnelError("rank \(r) sent \(block.count) bytes, \(recvCounts[r]) expected") }
            if !block.isEmpty { block.withUnsafeBytes { (out.baseAddress! + Int(recvDisplacements[r])).copyMemory(from: $0.baseAddress!, byteCount: block.count) } }
        }
    }

    var lightGBMFunctions: (reduceScatter: UnsafeMutableRawPointer, allgather: UnsafeMutableRawPointer)? { nil }
    func abort(code: Int32) -> Never { fatalError("an in-process rank aborted the job (code \(code))") }
    func finalize() {}
}
