import NIOCore
import NIOHTTPTypes

/// Honours a response's `Connection: close` at once. Hummingbird would otherwise read the rest
/// of an unread request body to keep the connection (up to the body timeout: a client still
/// sending a 9 MB body after its 413 waited 30 s). Once such a response is written, the
/// connection's output is shut (the client sees the response and the end of the stream), what
/// the client still sends is read and dropped for `linger` so it is not reset mid-send before it
/// reads the answer, then the connection is closed.
final class LingeringCloseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let linger: TimeAmount
    private var closeAfterResponse = false
    private var draining = false

    init(linger: TimeAmount = .seconds(1)) { self.linger = linger }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !draining else { return }  // the answer is out: what follows is dropped
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterResponse = head.headerFields[.connection]?.lowercased() == "close"
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterResponse else { return context.write(data, promise: promise) }
            draining = true
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let linger = self.linger
            written.futureResult.whenComplete { _ in
                let context = loopBound.value
                context.close(mode: .output, promise: nil)
                context.eventLoop.scheduleTask(in: linger) { loopBound.value.close(promise: nil) }
            }
        }
    }
}
