import CMPI
import Foundation
import Funnel

/// Open MPI's `MPI_COMM_WORLD` as a `CollectiveTransport`, through the CMPI shim (errors are
/// returned, not fatal, so a rank names the cause before ending the job; every collective waits
/// at most `collectiveTimeout` seconds for the others).
public final class MPITransport: CollectiveTransport, @unchecked Sendable {
    public let rank: Int
    public let size: Int

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: Communicator?

    /// The job's communicator: MPI is started when the process runs under `mpirun` with more
    /// than one rank, or when `explicit` (`--distributed`) — which outside `mpirun` is an error.
    /// `Communicator.single` for a lone process.
    public static func start(explicit: Bool) throws -> Communicator {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        guard let size = Communicator.launchedSize else {
            if explicit {
                throw FunnelError("--distributed runs under mpirun (e.g. mpirun -np 2 funnel train …); "
                                  + "this process has no MPI environment (OMPI_COMM_WORLD_SIZE / PMI_SIZE)")
            }
            return .single
        }
        guard size > 1 || explicit else { return .single }
        if funnel_mpi_is_initialized() == 0 {
            try check(funnel_mpi_init(), "MPI_Init")
        }
        let c = Communicator(transport: MPITransport(rank: Int(funnel_mpi_rank()), size: Int(funnel_mpi_size())))
        shared = c
        return c
    }

    /// Seconds a collective waits for the other ranks before the job is ended (`--collective-timeout`).
    public static var collectiveTimeout: Double {
        get { funnel_mpi_timeout() }
        set { funnel_mpi_set_timeout(newValue) }
    }

    static func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        funnel_mpi_error_string(rc, &text, Int32(text.count))
        throw FunnelError("\(what) failed: \(String(cString: text))")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try Self.check(funnel_mpi_allreduce_sum_float(buffer, Int64(count)), "MPI_Allreduce")
    }

    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try Self.check(funnel_mpi_start_allreduce_sum_float(buffer, Int64(count)), "MPI_Iallreduce")
    }

    public func finishStarted() throws {
        try Self.check(funnel_mpi_finish_started(), "MPI_Iallreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try Self.check(funnel_mpi_allreduce_sum_double(buffer, Int64(count)), "MPI_Allreduce")
    }

    public func allreduceMaximum(_ value: inout Int64) throws {
        try Self.check(funnel_mpi_allreduce_max_int64(&value, 1), "MPI_Allreduce")
    }

    public func allreduceMinimum(_ value: inout Int64) throws {
        try Self.check(funnel_mpi_allreduce_min_int64(&value, 1), "MPI_Allreduce")
    }

    public func allgather(_ values: UnsafePointer<Int64>, count: Int, into out: UnsafeMutablePointer<Int64>) throws {
        try Self.check(funnel_mpi_allgather_int64(values, Int64(count), out), "MPI_Allgather")
    }

    public func allgatherv(_ send: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, counts: [Int64], displacements: [Int64]) throws {
        try Self.check(funnel_mpi_allgatherv_bytes(send.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int64(send.count),
                                                   out.baseAddress!, counts, displacements), "MPI_Allgatherv")
    }

    public func alltoallv(_ send: UnsafeRawBufferPointer, sendCounts: [Int64], sendDisplacements: [Int64],
                          into out: UnsafeMutableRawBufferPointer, recvCounts: [Int64], recvDisplacements: [Int64]) throws {
        try Self.check(funnel_mpi_alltoallv_bytes(send.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, sendCounts, sendDisplacements,
                                                  out.baseAddress!, recvCounts, recvDisplacements), "MPI_Alltoallv")
    }

    public var lightGBMFunctions: (reduceScatter: UnsafeMutableRawPointer, allgather: UnsafeMutableRawPointer)? {
        (funnel_lgbm_reduce_scatter_function(), funnel_lgbm_allgather_function())
    }

    public func abort(code: Int32) -> Never {
        funnel_mpi_abort(code)
        exit(code)
    }

    public func finalize() {
        Self.lock.lock()
        defer { Self.lock.unlock() }
        _ = funnel_mpi_finalize()
        Self.shared = nil
    }
}
