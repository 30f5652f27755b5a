import Hummingbird
import NIOCore

/// Collects a request body in two steps (see `FunnelServer.predict(request:)`): a prefix of up
/// to `prefixBytes` before the request takes a place in the gate, the rest within a deadline
/// once it holds one. Past `limit` bytes it throws `TooLarge`; a deadline missed is `TooSlow`.
struct BodyReader {
    /// Read before a gate place is taken: a request of this size (about 250 rows of the bench's
    /// ESMM) never waits on a slow stranger, and a trickling connection holds at most this.
    static let prefixBytes = 64 << 10

    struct TooLarge: Error {}
    struct TooSlow: Error {}

    private var iterator: RequestBody.AsyncIterator
    private let limit: Int
    private(set) var body = ByteBuffer()
    private(set) var complete = false

    init(_ source: RequestBody, limit: Int) {
        iterator = source.makeAsyncIterator()
        self.limit = limit
    }

    /// Reads until the body ends or `prefixBytes` have arrived.
    mutating func readPrefix() async throws {
        while !complete && body.readableBytes < Self.prefixBytes { try await next() }
    }

    /// Reads the rest, failing with `TooSlow` when it takes longer than `seconds`. The deadline
    /// races the read in a task group; the read's task owns the iterator meanwhile.
    mutating func readRest(within seconds: Double) async throws {
        let start = self
        let finished: BodyReader = try await withThrowingTaskGroup(of: BodyReader?.self) { group in
            group.addTask {
                var reader = start
                while !reader.complete { try await reader.next() }
                return reader
            }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let reader = first else { throw TooSlow() }
            return reader
        }
        self = finished
    }

    private mutating func next() async throws {
        guard var chunk = try await iterator.next() else { complete = true; return }
        guard body.readableBytes + chunk.readableBytes <= limit else { throw TooLarge() }
        body.writeBuffer(&chunk)
    }
}
