import Foundation

/// A counting semaphore for async code: at most `limit` holders at once, the rest wait in order.
/// The uncontended path takes a lock and returns (no actor hop, no task), since every predict
/// request passes through it. A waiter whose task is cancelled (the server shutting down) leaves
/// the line with `CancellationError` instead of waiting forever: a connection task that never
/// returned would keep the server from stopping (and NIO traps on its unfinished writer).
final class RequestGate: @unchecked Sendable {
    private let limit: Int
    private var active = 0
    private var waiting: [(id: UInt64, continuation: CheckedContinuation<Void, Error>)] = []
    /// Waiters between `enter` and joining the line, and those of them cancelled meanwhile.
    private var arriving = Set<UInt64>(), cancelledArriving = Set<UInt64>()
    private var nextID: UInt64 = 0
    private let lock = NSLock()

    init(limit: Int) { self.limit = limit }

    func enter() async throws {
        if tryEnter() { return }
        let id: UInt64 = lock.withLock {
            nextID += 1
            arriving.insert(nextID)
            return nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in enqueue(id, c) }
        } onCancel: {
            cancel(id)
        }
    }

    private func tryEnter() -> Bool {
        lock.withLock {
            guard active < limit else { return false }
            active += 1
            return true
        }
    }

    /// Waits in line, unless a place freed up since `tryEnter` or the task was cancelled meanwhile.
    private func enqueue(_ id: UInt64, _ c: CheckedContinuation<Void, Error>) {
        enum Outcome { case admitted, cancelled, waiting }
        let outcome: Outcome = lock.withLock {
            arriving.remove(id)
            if cancelledArriving.remove(id) != nil { return .cancelled }
            if active < limit { active += 1; return .admitted }
            waiting.append((id, c))
            return .waiting
        }
        switch outcome {
        case .admitted: c.resume()
        case .cancelled: c.resume(throwing: CancellationError())
        case .waiting: break
        }
    }

    /// A cancelled waiter leaves the line (or, not in it yet, is turned away when it arrives).
    private func cancel(_ id: UInt64) {
        let c: CheckedContinuation<Void, Error>? = lock.withLock {
            if let k = waiting.firstIndex(where: { $0.id == id }) { return waiting.remove(at: k).continuation }
            if arriving.contains(id) { cancelledArriving.insert(id) }  // (an admitted waiter has nothing to undo)
            return nil
        }
        c?.resume(throwing: CancellationError())
    }

    /// Places held, requests waiting for one, and the number of places.
    var load: (active: Int, waiting: Int, limit: Int) {
        lock.withLock { (active, waiting.count, limit) }
    }

    /// Hands the place to the next waiter, if any.
    func leave() {
        lock.lock()
        if waiting.isEmpty {
            active -= 1
            lock.unlock()
        } else {
            let next = waiting.removeFirst()
            lock.unlock()
            next.continuation.resume()
        }
    }
}
