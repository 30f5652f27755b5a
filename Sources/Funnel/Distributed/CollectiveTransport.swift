import Foundation

/// The primitives a job's ranks exchange bytes with — one per MPI call the engine makes — under
/// `Communicator`, which adds the byte counts, the timing and the typed helpers on top. Three
/// implementations: Open MPI (`FunnelDistributed.MPITransport`, under mpirun), one process
/// (`SingleProcessTransport`, every collective the identity) and threads standing for ranks
/// (`InProcessRanks`, which tests the exchanges without mpirun).
///
/// Every call is collective: every rank makes it, in the same order, with matching counts.
public protocol CollectiveTransport: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// In place: `buffer[i]` becomes Σ over ranks of `buffer[i]`, summed in rank order.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// Starts `allreduceSum` of `buffer` (untouched until `finishStarted`) so that the
    /// collectives called in between overlap it; one at a time.
    func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    func finishStarted() throws
    func allreduceMaximum(_ value: inout Int64) throws
    func allreduceMinimum(_ value: inout Int64) throws
    /// Every rank's `count` values, rank after rank, into `out` (`size × count`).
    func allgather(_ values: UnsafePointer<Int64>, count: Int, into out: UnsafeMutablePointer<Int64>) throws
    /// Byte blocks of any length: `counts[r]` bytes from rank r land at `displacements[r]` of `out`.
    func allgatherv(_ send: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, counts: [Int64], displacements: [Int64]) throws
    /// Personalised exchange: `sendCounts[r]` bytes at `sendDisplacements[r]` go to rank r;
    /// `recvCounts[r]` bytes from rank r land at `recvDisplacements[r]` of `out`.
    func alltoallv(_ send: UnsafeRawBufferPointer, sendCounts: [Int64], sendDisplacements: [Int64],
                   into out: UnsafeMutableRawBufferPointer, recvCounts: [Int64], recvDisplacements: [Int64]) throws
    /// LightGBM's external network functions (`LGBM_NetworkInitWithFunctions`'s reduce-scatter
    /// and all-gather) over this transport; nil when it cannot carry LightGBM's own collectives.
    var lightGBMFunctions: (reduceScatter: UnsafeMutableRawPointer, allgather: UnsafeMutableRawPointer)? { get }
    /// Ends every rank of the job.
    func abort(code: Int32) -> Never
    func finalize()
}

extension CollectiveTransport {
    /// Transports without non-blocking collectives sum at once; nothing is left to wait for.
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws { try allreduceSum(buffer, count: count) }
    public func finishStarted() throws {}
}

/// A lone process: rank 0 of 1, every collective the identity (sums, maxima and gathers of one
/// rank are its own values), so library code runs the same calls with or without mpirun.
public final class SingleProcessTransport: CollectiveTransport {
    public let rank = 0, size = 1
    public init() {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func allreduceMaximum(_ value: inout Int64) throws {}
    public func allreduceMinimum(_ value: inout Int64) throws {}
    public func allgather(_ values: UnsafePointer<Int64>, count: Int, into out: UnsafeMutablePointer<Int64>) throws {
        out.update(from: values, count: count)
    }
    public func allgatherv(_ send: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, counts: [Int64], displacements: [Int64]) throws {
        if send.count > 0 { (out.baseAddress! + Int(displacements[0])).copyMemory(from: send.baseAddress!, byteCount: send.count) }
    }
    public func alltoallv(_ send: UnsafeRawBufferPointer, sendCounts: [Int64], sendDisplacements: [Int64],
                          into out: UnsafeMutableRawBufferPointer, recvCounts: [Int64], recvDisplacements: [Int64]) throws {
        let n = Int(sendCounts[0])
        if n > 0 { (out.baseAddress! + Int(recvDisplacements[0])).copyMemory(from: send.baseAddress! + Int(sendDisplacements[0]), byteCount: n) }
    }
    public var lightGBMFunctions: (reduceScatter: UnsafeMutableRawPointer, allgather: UnsafeMutableRawPointer)? { nil }
    public func abort(code: Int32) -> Never { exit(code) }
    public func finalize() {}
}
