import NIOCore
import NIOHTTP1

/// An upstream HTTP/1.1 connection carrying one request at a time, kept alive between them.
final class HTTP1ClientConnection: ChannelDuplexHandler, UpstreamConnection, UpstreamRequest {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private enum State { case idle, active, closed }
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var handler: UpstreamResponseHandler?
    private var requestDone = false
    private var responseDone = false
    private var keepAlive = true
    private var requestMethod = "GET"
    private var responseHasNoBody = false
    private var readPaused = false
    private var readPending = false
    private var idleTimer: Scheduled<Void>?
    private let idleTimeout: TimeAmount
    var onStateChange: (() -> Void)?

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    var eventLoop: EventLoop { context!.eventLoop }
    var canStartStream: Bool { state == .idle }
    var isClosed: Bool { state == .closed }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armIdleTimer()
    }

    func startStream(handler: UpstreamResponseHandler) -> UpstreamRequest? {
        guard state == .idle else { return nil }
        idleTimer?.cancel()
        state = .active
        self.handler = handler
        requestDone = false
        responseDone = false
        responseHasNoBody = false
        return self
    }

    func close() {
        context?.close(promise: nil)
    }

    // MARK: UpstreamRequest

    func sendHead(_ head: RequestHead, endStream: Bool) {
        guard let context, state == .active else { return }
        var headers = head.headers
        headers.replaceOrAdd(name: "host", value: head.authority)
        requestMethod = head.method
        if endStream {
            if ["POST", "PUT", "PATCH"].contains(head.method), !headers.contains(name: "content-length") {
                headers.add(name: "content-length", value: "0")
            }
        } else if !headers.contains(name: "content-length") {
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        let h = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: head.method), uri: head.path, headers: headers)
        context.write(wrapOutboundOut(.head(h)), promise: nil)
        if endStream { endRequest(nil) } else { context.flush() }
    }

    func sendData(_ data: ByteBuffer, endStream: Bool) {
        guard let context, state == .active else { return }
        if data.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(data))), promise: nil) }
        if endStream { endRequest(nil) } else { context.flush() }
    }

    func sendTrailers(_ trailers: HTTPHeaders) {
        guard state == .active else { return }
        endRequest(trailers)
    }

    private func endRequest(_ trailers: HTTPHeaders?) {
        requestDone = true
        context?.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        if responseDone { becomeIdle() }
    }

    func cancel() {
        handler = nil
        close()
    }

    func setResponseReadingPaused(_ paused: Bool) {
        readPaused = paused
        if !paused, readPending, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: channel events

    func read(context: ChannelHandlerContext) {
        if readPaused { readPending = true } else { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state == .active, let handler else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            keepAlive = h.isKeepAlive
            let length = h.headers.first(name: "content-length")
            responseHasNoBody = requestMethod == "HEAD" || h.status.code == 204 || h.status.code == 304
                || (length == "0" && !h.headers.contains(name: "transfer-encoding"))
            handler.upstreamHead(ResponseHead(status: Int(h.status.code), reason: h.status.reasonPhrase, headers: h.headers),
                                 endStream: responseHasNoBody)
        case .body(let b):
            handler.upstreamData(b, endStream: false)
        case .end(let trailers):
            responseDone = true
            self.handler = nil
            if let trailers, !trailers.isEmpty { handler.upstreamTrailers(trailers) }
            else if !responseHasNoBody { handler.upstreamData(ByteBuffer(), endStream: true) }
            if !keepAlive { close() } else if requestDone { becomeIdle() }
        }
    }

    private func becomeIdle() {
        guard state == .active else { return }
        state = .idle
        handler = nil
        armIdleTimer()
        onStateChange?()
    }

    private func armIdleTimer() {
        guard let context else { return }
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [weak self] in
            if self?.state == .idle { self?.close() }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        handler?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let h = state == .active ? handler : nil
        state = .closed
        handler = nil
        idleTimer?.cancel()
        h?.upstreamFailed(.reset("upstream connection closed"))
        onStateChange?()
        onStateChange = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let h = state == .active ? handler : nil
        handler = nil
        if error is HTTPParserError { h?.upstreamFailed(.protocolError("\(error)")) }
        else { h?.upstreamFailed(.reset("\(error)")) }
        context.close(promise: nil)
    }
}
