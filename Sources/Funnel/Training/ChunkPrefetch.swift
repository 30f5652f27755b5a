import Foundation

/// Builds a streamed run's next shuffle buffer on a second thread while the trainer trains on
/// the current one, so reading and encoding row groups (a fifth of a streamed epoch, one core)
/// no longer leaves the other core idle between buffers.
///
/// The producer runs the same fill loop as the serial path and hands over the same chunks in the
/// same order, so batches and weights are byte-identical (tested). Memory stays what the
/// streaming plan counts — two buffers: the producer collects the next buffer's encoded groups
/// while the trainer holds the current chunk, and joins them into a chunk only once the trainer
/// has let go of the previous one (`hand` waits for `next`).
///
/// The producer takes no collective steps: a sharded data-parallel run (whose fill loop
/// all-reduces counts and forms label views) fills serially.
final class ChunkPrefetch: @unchecked Sendable {
    private let condition = NSCondition()
    /// The trainer is done with its chunk and waits for the next.
    private var wanted = false
    private var slot: EncodedDataset?
    private var finished = false
    private var cancelled = false
    private var failure: Error?

    /// Thrown inside the producer once the trainer has stopped (an error, early stopping).
    struct Cancelled: Error {}

    /// Runs `produce` on a producer thread (it calls `hand` with each chunk's maker) and `consume`
    /// on this thread with each chunk in order. The producer's error is rethrown; when `consume`
    /// throws, the producer is stopped at its next group or hand-over and joined first.
    static func run(produce: @escaping (ChunkPrefetch) throws -> Void, consume: (EncodedDataset) throws -> Void) throws {
        let handoff = ChunkPrefetch()
        let thread = Thread {
            let outcome = Result { try produce(handoff) }
            handoff.finish(outcome)
        }
        thread.stackSize = 8 << 20
        thread.start()
        do {
            while let chunk = try handoff.next() { try consume(chunk) }
        } catch {
            handoff.cancelAndJoin()
            throw error
        }
    }

    /// Producer: waits until the trainer wants a chunk, then makes it (outside the lock: joining
    /// a buffer's groups is the producer's work) and hands it over.
    func hand(_ make: () throws -> EncodedDataset) throws {
        condition.lock()
        while !wanted && !cancelled { condition.wait() }
        let stop = cancelled
        condition.unlock()
        if stop { throw Cancelled() }
        let chunk = try make()
        condition.lock()
        (slot, wanted) = (chunk, false)
        condition.broadcast()
        condition.unlock()
    }

    /// Producer: throws `Cancelled` once the trainer has stopped (checked between row groups).
    func checkCancelled() throws {
        condition.lock()
        let stop = cancelled
        condition.unlock()
        if stop { throw Cancelled() }
    }

    /// Trainer: the next chunk, nil after the last; the producer's error if it failed.
    private func next() throws -> EncodedDataset? {
        condition.lock()
        defer { condition.unlock() }
        wanted = true
        condition.broadcast()
        while slot == nil && !finished { condition.wait() }
        if let chunk = slot {
            slot = nil
            return chunk
        }
        if let failure { throw failure }
        return nil
    }

    private func finish(_ outcome: Result<Void, Error>) {
        condition.lock()
        if case .failure(let error) = outcome, !(error is Cancelled) { failure = error }
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    private func cancelAndJoin() {
        condition.lock()
        cancelled = true
        slot = nil
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
