import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request body does not arrive in time (a slow or stalled upload
/// holds a connection, its buffers and — past its first bytes — a place in the request gate):
/// the whole body within `timeout` of its head, and a body longer than `prefixBytes` the rest
/// within `restTimeout` of its first `prefixBytes` (`--slot-timeout`: the gate admits a request
/// after that prefix, so this bounds how long a place can wait for bytes). Sits after HTTP
/// decoding; the time before a head completes is bounded by the channel's idle timeout. The
/// deadlines live here, on the connection, so a stalled read is ended by closing the channel
/// rather than by cancelling the task that reads the body.
final class BodyTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private let restTimeout: TimeAmount
    private let prefixBytes: Int
    private var received = 0
    private var scheduled: Scheduled<Void>?
    private var restScheduled: Scheduled<Void>?

    init(timeout: TimeAmount, restTimeout: TimeAmount, prefixBytes: Int) {
        self.timeout = timeout
        self.restTimeout = restTimeout
        self.prefixBytes = prefixBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            cancelAll()
            received = 0
            scheduled = closing(context, after: timeout)
        case .body(let bytes):
            let before = received
            received += bytes.readableBytes
            if before <= prefixBytes && received > prefixBytes { restScheduled = closing(context, after: restTimeout) }
        case .end:
            cancelAll()
        }
        context.fireChannelRead(data)
    }

    private func closing(_ context: ChannelHandlerContext, after delay: TimeAmount) -> Scheduled<Void> {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: delay) { loopBound.value.close(promise: nil) }
    }

    private func cancelAll() {
        scheduled?.cancel()
        restScheduled?.cancel()
        scheduled = nil
        restScheduled = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { cancelAll() }
}
