import CProcess
import Foundation
import HummingbirdCore
#if canImport(Glibc)
import Glibc
#endif

/// The open connections of a server, and their cap. At the cap the server stops accepting
/// (Hummingbird's `AvailableConnectionsDelegate` pauses reads on the listening socket), so new
/// connections wait in the kernel's backlog instead of running the process out of file
/// descriptors — where the accept loop would spin on EMFILE and `/healthz` itself could not be
/// answered. When the last connection of a busy period closes, freed heap is returned to the
/// kernel (at most every 5 s).
final class ConnectionCounter: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var open = 0
    private var busiest = 0
    private var lastRelease = Date.distantPast
    private var stopped = false

    init(limit: Int) { self.limit = limit }

    /// Descriptors left for everything else (model files, logs, the listening socket).
    static let headroom = 64

    /// The default cap: the process's descriptor limit less the headroom, at most 16,384
    /// (about 11 KB of memory each while idle, measured).
    static var defaultLimit: Int {
        var r = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return 1024 - headroom }
        let soft = Int(clamping: min(r.rlim_cur, rlim_t(1 << 20)))  // RLIM_INFINITY is the largest value
        return max(16, min(soft - headroom, 16_384))
    }

    var current: Int { lock.withLock { open } }

    /// Whether another connection may be accepted: under the cap, and the server not stopping
    /// (a connection accepted from the backlog while the server shuts down would be set up with
    /// no one left to serve it).
    var accepting: Bool { lock.withLock { !stopped && open < limit } }

    /// The server is stopping: accept nothing more.
    func stop() { lock.withLock { stopped = true } }

    func opened() { lock.withLock { open += 1; busiest = max(busiest, open) } }

    func closed() {
        let release: Bool = lock.withLock {
            open -= 1
            guard open == 0, busiest > 64, Date().timeIntervalSince(lastRelease) > 5 else { return false }
            busiest = 0
            lastRelease = Date()
            return true
        }
        if release { DispatchQueue.global(qos: .utility).async { funnel_release_free_memory() } }
    }
}

/// Hummingbird's hook, counting into a `ConnectionCounter`.
struct ConnectionCap: AvailableConnectionsDelegate {
    let counter: ConnectionCounter
    func connectionOpened() { counter.opened() }
    func connectionClosed() { counter.closed() }
    func isAcceptingNewConnections() -> Bool { counter.accepting }
}
