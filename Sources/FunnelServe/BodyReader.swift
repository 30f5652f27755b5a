import Hummingbird
import NIOCore

/// Collects a request body in two steps (see `FunnelServer.predict(request:)`): a prefix of up
/// to `prefixBytes` before the request takes a place in the gate, the rest once it holds one
/// (`BodyTimeoutHandler` closes the connection when the rest is too slow, which ends the read
/// with an error). Past `limit` bytes it throws `TooLarge`.
struct BodyReader {
    /// Read before a gate place is taken: a request of this size (about 250 rows of the bench's
    /// ESMM) never waits on a slow stranger, and a trickling connection holds at most this.
    static let prefixBytes = 64 << 10

    struct TooLarge: Error {}

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

    /// Reads the rest of the body.
    mutating func readRest() async throws {
        while !complete { try await next() }
    }

    private mutating func next() async throws {
        guard var chunk = try await iterator.next() else { complete = true; return }
        guard body.readableBytes + chunk.readableBytes <= limit else { throw TooLarge() }
        body.writeBuffer(&chunk)
    }
}
