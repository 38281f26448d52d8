import NIOCore
import NIOHTTP1
import MeshAPI

/// A downstream HTTP/1.x connection: turns NIOHTTP1's request parts into stream events and
/// the engine's response calls into response parts. One exchange at a time: a pipelined
/// request waits in `pipelined` (and reading pauses) until the exchange before it is done.
package final class HTTP1ServerConnection: ChannelDuplexHandler, DownstreamStream, TimerTarget {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTPServerResponsePart

    private let factory: DownstreamStreamFactory
    package let connectionInfo: ConnectionInfo
    private let timeouts: ConnectionTimeouts
    private var context: ChannelHandlerContext?
    private var events: DownstreamStreamEvents?
    private var version = HTTPVersion.http1_1
    private var keepAlive = true
    private var requestComplete = true
    private var responseComplete = true
    private var requestEndSwallowed = false
    private var readPaused = false
    private var readPending = false
    private let timers: LoopTimers
    private var timer: LoopTimers.Token?
    private var waiting = Waiting.firstRequestHeaders
    /// When the connection was accepted: the first request's headers are timed from then,
    /// so a TLS handshake or a silent client cannot stretch the header timeout.
    private let acceptedAt: NIODeadline
    private var pipelined: [HTTPServerRequestPart] = []
    private var flushPending = false
    private var draining = false
    private var responseHeadSent = false
    private var lingering = false
    /// An Upgrade request is in flight; after a 101 the connection is a raw tunnel.
    private var upgradeRequested = false
    private var tunnel = false
    /// Bytes of the next request came in while this exchange's response was outstanding.
    private var nextRequestStarted = false

    /// What the connection's one timer is waiting for.
    private enum Waiting {
        /// The first request's headers, timed from the accept (408 when late).
        case firstRequestHeaders
        /// The next request's headers: its first byte arrived (408 when late).
        case requestHeaders
        /// An exchange is in flight: no connection timer.
        case exchange
        /// Nothing sent since the last exchange: closed quietly after the idle timeout.
        case idle
    }

    package init(factory: DownstreamStreamFactory, connectionInfo: ConnectionInfo, timeouts: ConnectionTimeouts,
                 timers: LoopTimers, acceptedAt: NIODeadline = .now()) {
        self.timers = timers
        self.factory = factory
        self.connectionInfo = connectionInfo
        self.timeouts = timeouts
        self.acceptedAt = acceptedAt
    }

    package var eventLoop: EventLoop { context!.eventLoop }
    package var isWritable: Bool { context?.channel.isWritable ?? false }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        wait(for: .firstRequestHeaders)
    }

    /// The context and the stream refer back to this handler: let go of them so the
    /// connection's objects are freed with the channel.
    package func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        events = nil
        pipelined = []
        self.context = nil
    }

    /// Bytes arrived from the client, before the HTTP decoder saw them (`HTTP1ReadWatch`).
    /// Between exchanges they start the next request, whose headers are now timed.
    package func bytesArrived() {
        switch waiting {
        case .idle: wait(for: .requestHeaders)
        case .exchange where requestComplete && !tunnel: nextRequestStarted = true
        case .exchange, .firstRequestHeaders, .requestHeaders: break
        }
    }

    // MARK: requests in

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if lingering { return }
        let part = unwrapInboundIn(data)
        if !pipelined.isEmpty || (!(requestComplete && responseComplete) && isHead(part)) {
            pipelined.append(part)
            readPaused = true
            return
        }
        handle(part)
    }

    private func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { return true }
        return false
    }

    private func handle(_ part: HTTPServerRequestPart) {
        if lingering { return }
        switch part {
        case .head(let h):
            if let refusal = Self.refusal(of: h) { return sendErrorAndClose(status: refusal) }
            wait(for: .exchange)
            version = h.version
            keepAlive = h.isKeepAlive && !draining
            requestComplete = false
            responseComplete = false
            responseHeadSent = false
            var headers = h.headers
            let authority = headers.first(name: "host") ?? ""
            headers.remove(name: "host")
            let hasBody = headers.contains(name: "transfer-encoding")
                || (headers.first(name: "content-length").map { $0 != "0" } ?? false)
            let head = RequestHead(method: h.method.rawValue, scheme: connectionInfo.isTLS ? "https" : "http",
                                   authority: authority, path: h.uri, headers: headers,
                                   version: h.version.minor == 0 ? .http10 : .http11)
            upgradeRequested = isUpgradeRequest(h.headers)
            requestEndSwallowed = !hasBody && !upgradeRequested
            let stream = factory.makeStream(downstream: self)
            events = stream
            stream.receiveHead(head, endStream: !hasBody && !upgradeRequested)
        case .body(let b):
            events?.receiveData(b, endStream: false)
        case .end(let trailers):
            // An upgrade request's "body" is the tunnel that may follow; it ends when the connection does.
            if upgradeRequested { return }
            requestComplete = true
            if requestEndSwallowed { break }
            if let trailers, !trailers.isEmpty { events?.receiveTrailers(trailers) }
            else { events?.receiveData(ByteBuffer(), endStream: true) }
        }
        if requestComplete && responseComplete { exchangeDone() }
    }

    // MARK: responses out

    package func sendResponseHead(_ head: ResponseHead, endStream: Bool) {
        guard let context else { return }
        responseHeadSent = true
        var headers = head.headers
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        else if version.minor == 0 { headers.replaceOrAdd(name: "connection", value: "keep-alive") }
        if !endStream, version.minor == 0, !headers.contains(name: "content-length") {
            // HTTP/1.0 has no chunked encoding: the body ends when the connection does.
            keepAlive = false
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        var status = HTTPResponseStatus(statusCode: head.status)
        // NIO's init(statusCode:reasonPhrase:) keeps the standard phrase of a known code: a
        // phrase of our own (Lua's setHttp1ReasonPhrase) needs `.custom`.
        if let reason = head.reason, reason != status.reasonPhrase, !reason.isEmpty,
           reason.utf8.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) {
            status = .custom(code: UInt(head.status), reasonPhrase: reason)
        }
        if upgradeRequested, head.status == 101 {
            headers.replaceOrAdd(name: "connection", value: "upgrade")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
            return becomeTunnel(context)
        }
        if upgradeRequested, !endStream { keepAlive = false }
        if endStream, !requestComplete, !requestEndSwallowed, keepAlive {
            // Answered before the request body arrived (a local reply): say we will close.
            keepAlive = false
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if endStream { endResponse(nil) }
    }

    package func sendResponseData(_ data: ByteBuffer, endStream: Bool) {
        guard let context else { return }
        if tunnel {
            if data.readableBytes > 0 { context.writeAndFlush(NIOAny(data), promise: nil) }
            if endStream { responseComplete = true; events = nil; context.close(promise: nil) }
            return
        }
        if data.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(data))), promise: nil)
        }
        if endStream { endResponse(nil) } else { scheduleFlush(context) }
    }

    /// Body chunks that arrive together leave in one syscall: the flush waits for the
    /// end of the current loop tick (or the response's end, whichever comes first).
    private func scheduleFlush(_ context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let me = bound.value
            guard me.flushPending else { return }
            me.flushPending = false
            me.context?.flush()
        }
    }

    package func sendResponseTrailers(_ trailers: HTTPHeaders) {
        endResponse(trailers)
    }

    private func endResponse(_ trailers: HTTPHeaders?) {
        guard let context else { return }
        responseComplete = true
        events = nil
        flushPending = false
        context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        // A response that ends while the request body is still coming leaves the connection
        // unusable (a body-less request's end is just not parsed yet).
        if !requestComplete && !requestEndSwallowed { keepAlive = false }
        if !keepAlive {
            context.close(promise: nil)
        } else if requestComplete {
            exchangeDone()
        }
    }

    private func becomeTunnel(_ context: ChannelHandlerContext) {
        tunnel = true
        keepAlive = false
        wait(for: .exchange)
        let sync = context.pipeline.syncOperations
        let httpHandlers: [ChannelHandlerContext?] = [
            try? sync.context(handlerType: HTTPResponseEncoder.self),
            try? sync.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self),
            try? sync.context(handlerType: HTTPServerPipelineHandler.self),
            try? sync.context(handlerType: NIOHTTPResponseHeadersValidator.self),
            try? sync.context(handlerType: HTTP1ReadWatch.self),
        ]
        do {
            try RawTunnelHandler.replaceHTTPCodec(in: sync, codec: self, httpHandlers: httpHandlers) { [weak self] bytes in
                self?.events?.receiveData(bytes, endStream: false)
            }
        } catch {
            reset()
        }
    }

    private func exchangeDone() {
        if draining { context?.close(promise: nil); return }
        wait(for: nextRequestStarted ? .requestHeaders : .idle)
        nextRequestStarted = false
        // Replay pipelined requests; one of them may start the next exchange and queue the rest again.
        while !pipelined.isEmpty, requestComplete && responseComplete || !isHead(pipelined[0]) {
            handle(pipelined.removeFirst())
        }
        if pipelined.isEmpty, readPaused { setRequestReadingPaused(false) }
    }

    package func reset() {
        events = nil
        context?.close(promise: nil)
    }

    package func setRequestReadingPaused(_ paused: Bool) {
        readPaused = paused
        if !paused, readPending, let context {
            readPending = false
            context.read()
        }
    }

    package func drainConnection() { startDraining() }

    /// Drain: finish the exchange in flight with `connection: close`, close an idle connection now.
    package func startDraining() {
        draining = true
        keepAlive = false
        if responseComplete { context?.close(promise: nil) }
    }

    // MARK: channel events

    package func read(context: ChannelHandlerContext) {
        if readPaused { readPending = true } else { context.read() }
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        events?.streamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        let e = events
        events = nil
        if tunnel, !responseComplete {
            // The client closed its side of a tunnel: that is the request's end, not a failure.
            e?.receiveData(ByteBuffer(), endStream: true)
        }
        if !responseComplete { e?.downstreamReset() }
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: Error) {
        if lingering { return }
        // Malformed input: answer once with the right status and close, never forward.
        if !responseComplete {
            // Mid-request: abandon the exchange; answer 400 only if no response has started.
            events?.downstreamReset()
            events = nil
            guard !responseHeadSent else { return context.close(promise: nil) }
        }
        let status = (error as? HTTPParserError) == .headerOverflow ? 431 : 400
        sendErrorAndClose(status: status)
    }

    /// Answers a protocol error below the HTTP codec (raw bytes from the encoder's position,
    /// so no response state machine is involved), then closes after a short linger so the
    /// client reads the answer instead of a reset.
    private func sendErrorAndClose(status: Int) {
        guard let context, context.channel.isActive, !lingering else { return }
        lingering = true
        responseComplete = true
        events = nil
        cancelTimer()
        let reason: String
        switch status {
        case 404: reason = "Not Found"
        case 408: reason = "Request Timeout"
        case 431: reason = "Request Header Fields Too Large"
        default: reason = "Bad Request"
        }
        let text = "HTTP/1.1 \(status) \(reason)\r\ncontent-length: \(reason.utf8.count)\r\ncontent-type: text/plain\r\n"
            + "connection: close\r\nserver: meshd\r\n\r\n\(reason)"
        let channel = context.channel
        // Written from the encoder's position, the bytes go straight to TLS or the socket.
        guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else {
            return context.close(promise: nil)
        }
        encoder.writeAndFlush(NIOAny(ByteBuffer(string: text))).assumeIsolated().whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
    }

    /// One timer at a time: request headers (408) or idle between requests (close).
    private func wait(for what: Waiting) {
        cancelTimer()
        waiting = what
        switch what {
        case .firstRequestHeaders: timer = timers.arm(after: timeouts.requestHeaders, from: acceptedAt, self)
        case .requestHeaders: timer = timers.arm(after: timeouts.requestHeaders, self)
        case .idle: timer = timers.arm(after: timeouts.idle, self)
        case .exchange: break
        }
    }

    private func cancelTimer() {
        timers.cancel(timer)
        timer = nil
    }

    package func timerFired(_ token: LoopTimers.Token) {
        guard token == timer else { return }
        timer = nil
        guard responseComplete, requestComplete else { return }
        switch waiting {
        case .firstRequestHeaders, .requestHeaders: sendErrorAndClose(status: 408)
        case .idle: context?.close(promise: nil)
        case .exchange: break
        }
    }

    /// Requests answered here, never forwarded. RFC 9112 §3.2: an HTTP/1.1 request needs
    /// exactly one Host, and no request may carry two (400). CONNECT: no route tunnels it
    /// (Envoy answers 404 without a connect matcher); answered here because NIO frames any
    /// response to CONNECT without a body or length, and its decoder reads nothing after one.
    private static func refusal(of head: HTTPRequestHead) -> Int? {
        if head.method == .CONNECT { return 404 }
        let hosts = head.headers["host"]
        switch hosts.count {
        case 0: return head.version.minor >= 1 ? 400 : nil
        // A comma is no part of a host: it is two Host values folded into one line.
        case 1: return hosts[0].utf8.contains(UInt8(ascii: ",")) ? 400 : nil
        default: return 400
        }
    }
}

public struct ConnectionTimeouts: Sendable {
    public var idle: TimeAmount
    public var requestHeaders: TimeAmount

    public init(idle: TimeAmount = .seconds(300), requestHeaders: TimeAmount = .seconds(10)) {
        self.idle = idle
        self.requestHeaders = requestHeaders
    }
}
