import Foundation

/// A counting semaphore for async code: at most `limit` holders at once, the rest wait in order.
/// The uncontended path takes a lock and returns (no actor hop, no task), since every predict
/// request passes through it.
final class RequestGate: @unchecked Sendable {
    private let limit: Int
    private var active = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private let lock = NSLock()

    init(limit: Int) { self.limit = limit }

    func enter() async {
        if tryEnter() { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in enqueue(c) }
    }

    private func tryEnter() -> Bool {
        lock.withLock {
            guard active < limit else { return false }
            active += 1
            return true
        }
    }

    /// Waits in line, unless a place freed up since `tryEnter`.
    private func enqueue(_ c: CheckedContinuation<Void, Never>) {
        let admitted: Bool = lock.withLock {
            if active < limit { active += 1; return true }
            waiting.append(c)
            return false
        }
        if admitted { c.resume() }
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
            next.resume()
        }
    }
}
