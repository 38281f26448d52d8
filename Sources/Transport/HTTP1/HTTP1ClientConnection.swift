import NIOCore
import NIOHTTP1
import MeshAPI

/// An upstream HTTP/1.1 connection carrying one request at a time, kept alive between them.
package final class HTTP1ClientConnection: ChannelDuplexHandler, UpstreamConnection, UpstreamRequest, TimerTarget {
    package typealias InboundIn = HTTPClientResponsePart
    package typealias OutboundIn = HTTPClientRequestPart
    package typealias OutboundOut = HTTPClientRequestPart

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
    private var idleTimer: LoopTimers.Token?
    private let timers: LoopTimers
    private var upgradeRequested = false
    private var tunnel = false
    private let idleTimeout: TimeAmount
    package var onStateChange: (() -> Void)?

    package init(idleTimeout: TimeAmount, timers: LoopTimers) {
        self.idleTimeout = idleTimeout
        self.timers = timers
    }

    package var eventLoop: EventLoop { context!.eventLoop }
    package var canStartStream: Bool { state == .idle }
    package var isClosed: Bool { state == .closed }
    package var isWritable: Bool { context?.channel.isWritable ?? false }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armIdleTimer()
    }

    /// The context refers back to this handler: let go of it (and of the pool's callback)
    /// so the connection's objects are freed with the channel.
    package func handlerRemoved(context: ChannelHandlerContext) {
        timers.cancel(idleTimer)
        idleTimer = nil
        handler = nil
        onStateChange = nil
        self.context = nil
    }

    package func startStream(handler: UpstreamResponseHandler) -> UpstreamRequest? {
        guard state == .idle else { return nil }
        timers.cancel(idleTimer)
        idleTimer = nil
        state = .active
        self.handler = handler
        requestDone = false
        responseDone = false
        responseHasNoBody = false
        return self
    }

    package func close() {
        context?.close(promise: nil)
    }

    // MARK: UpstreamRequest

    package func sendHead(_ head: RequestHead, endStream: Bool) {
        guard let context, state == .active else { return }
        var headers = head.headers
        headers.replaceOrAdd(name: "host", value: head.authority)
        requestMethod = head.method
        upgradeRequested = isUpgradeRequest(headers)
        if upgradeRequested {
            keepAlive = false
        } else if endStream {
            if Self.expectsBody(head.method), !headers.contains(name: "content-length") {
                headers.add(name: "content-length", value: "0")
            }
        } else if !headers.contains(name: "content-length") {
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        let h = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: head.method), uri: head.path, headers: headers)
        context.write(wrapOutboundOut(.head(h)), promise: nil)
        if endStream { endRequest(nil) } else { context.flush() }
    }

    /// Methods whose empty body is still announced (`content-length: 0`); a switch, not an
    /// array literal, since this runs for every request.
    private static func expectsBody(_ method: String) -> Bool {
        switch method {
        case "POST", "PUT", "PATCH": return true
        default: return false
        }
    }

    package func sendData(_ data: ByteBuffer, endStream: Bool) {
        guard let context, state == .active else { return }
        if tunnel {
            if data.readableBytes > 0 { context.writeAndFlush(NIOAny(data), promise: nil) }
            if endStream { close() }
            return
        }
        if data.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(data))), promise: nil) }
        if endStream { endRequest(nil) } else { context.flush() }
    }

    package func sendTrailers(_ trailers: HTTPHeaders) {
        guard state == .active else { return }
        endRequest(trailers)
    }

    private func endRequest(_ trailers: HTTPHeaders?) {
        requestDone = true
        context?.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        if responseDone { becomeIdle() }
    }

    package func cancel() {
        handler = nil
        close()
    }

    package func setResponseReadingPaused(_ paused: Bool) {
        readPaused = paused
        if !paused, readPending, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: channel events

    package func read(context: ChannelHandlerContext) {
        if readPaused { readPending = true } else { context.read() }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state == .active, let handler else { return }
        switch unwrapInboundIn(data) {
        case .head(let h) where h.status.code == 101 && upgradeRequested:
            tunnel = true
            handler.upstreamHead(ResponseHead(status: 101, reason: h.status.reasonPhrase, headers: h.headers), endStream: false)
        case .end where tunnel:
            // The decoder ends the 101 message and stops parsing; bytes after it are the tunnel's.
            becomeTunnel(context)
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

    /// After a 101 the connection carries raw bytes both ways until either side closes.
    private func becomeTunnel(_ context: ChannelHandlerContext) {
        keepAlive = false
        let sync = context.pipeline.syncOperations
        let httpHandlers: [ChannelHandlerContext?] = [
            try? sync.context(handlerType: HTTPRequestEncoder.self),
            try? sync.context(handlerType: ByteToMessageHandler<HTTPResponseDecoder>.self),
            try? sync.context(handlerType: NIOHTTPRequestHeadersValidator.self),
        ]
        do {
            try RawTunnelHandler.replaceHTTPCodec(in: sync, codec: self, httpHandlers: httpHandlers) { [weak self] bytes in
                self?.handler?.upstreamData(bytes, endStream: false)
            }
        } catch {
            close()
        }
    }

    private func becomeIdle() {
        guard state == .active else { return }
        state = .idle
        handler = nil
        // A pause belonged to the finished exchange; an idle connection must keep reading (to see a close).
        setResponseReadingPaused(false)
        armIdleTimer()
        onStateChange?()
    }

    private func armIdleTimer() {
        timers.cancel(idleTimer)
        idleTimer = timers.arm(after: idleTimeout, self)
    }

    package func timerFired(_ token: LoopTimers.Token) {
        guard token == idleTimer else { return }
        idleTimer = nil
        if state == .idle { close() }
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        handler?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        let h = state == .active ? handler : nil
        state = .closed
        handler = nil
        timers.cancel(idleTimer)
        idleTimer = nil
        if tunnel { h?.upstreamData(ByteBuffer(), endStream: true) }
        else { h?.upstreamFailed(.reset("upstream connection closed")) }
        onStateChange?()
        onStateChange = nil
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: Error) {
        let h = state == .active ? handler : nil
        handler = nil
        if error is HTTPParserError { h?.upstreamFailed(.protocolError("\(error)")) }
        // A failed handshake (bad chain, wrong SAN) is a connect failure, as Envoy counts it (503 UF).
        else if let tls = error as? TLSError { h?.upstreamFailed(.connectFailure("TLS error: \(tls.message)")) }
        else { h?.upstreamFailed(.reset("\(error)")) }
        context.close(promise: nil)
    }
}
