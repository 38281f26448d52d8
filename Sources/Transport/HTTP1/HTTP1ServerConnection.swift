import NIOCore
import NIOHTTP1
import MeshAPI

/// A downstream HTTP/1.x connection, the whole codec in one handler: it parses the read
/// bytes into stream events (`HTTP1RequestDecoder`) and writes each response's head and
/// body framing itself (`HTTP1Writer`), usually as one buffer per response.
/// One exchange at a time: the bytes of a pipelined request wait unparsed (and reading
/// pauses) until the exchange before it is done.
package final class HTTP1ServerConnection: ChannelDuplexHandler, DownstreamStream, TimerTarget {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private let factory: DownstreamStreamFactory
    package let connectionInfo: ConnectionInfo
    private let timeouts: ConnectionTimeouts
    private var context: ChannelHandlerContext?
    private var events: DownstreamStreamEvents?
    private var decoder: HTTP1RequestDecoder
    /// Read bytes not parsed yet; nil when all were (so the read buffer can be reused).
    private var inbound: ByteBuffer?
    /// Parsing is under way: a call that arrives from inside it (a reply sent synchronously
    /// from an event) leaves the rest to the loop already running.
    private var parsing = false
    /// A pipelined request's bytes wait for the exchange in flight; reading is paused.
    private var heldForPipelining = false
    /// Response bytes not yet handed to the channel: written at the response's end or the
    /// end of the loop tick, so a small response leaves in one write.
    private var out: ByteBuffer?
    private var responseFraming = HTTP1BodyFraming.none
    private var requestIsHEAD = false
    private var minorVersion = 1
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
    private var flushPending = false
    private var draining = false
    private var responseHeadSent = false
    private var lingering = false
    /// An Upgrade request is in flight; after a 101 the connection is a raw tunnel.
    private var upgradeRequested = false
    private var tunnel = false
    /// Bytes of the next request came in while this exchange's response was outstanding.
    private var nextRequestStarted = false

    /// Body chunks up to this size are copied into the pending response bytes; larger
    /// ones are written as they are.
    private static let copyLimit = 4096
    // Per connection, not a lazily initialised global checked on every read.
    private let emptyBody = ByteBuffer()

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

    /// `maxHeadBytes` bounds a request's head (431 beyond) and a chunked body's trailers.
    package init(factory: DownstreamStreamFactory, connectionInfo: ConnectionInfo, timeouts: ConnectionTimeouts,
                 maxHeadBytes: Int, timers: LoopTimers, acceptedAt: NIODeadline = .now()) {
        self.timers = timers
        self.factory = factory
        self.connectionInfo = connectionInfo
        self.timeouts = timeouts
        self.decoder = HTTP1RequestDecoder(maxHeadBytes: maxHeadBytes)
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
        inbound = nil
        out = nil
        self.context = nil
    }

    // MARK: requests in

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if lingering { return }
        var bytes = unwrapInboundIn(data)
        // Between exchanges, bytes start the next request, whose headers are now timed.
        switch waiting {
        case .idle: wait(for: .requestHeaders)
        case .exchange where requestComplete && !tunnel: nextRequestStarted = true
        case .exchange, .firstRequestHeaders, .requestHeaders: break
        }
        if tunnel {
            events?.receiveData(bytes, endStream: false)
            return
        }
        if inbound == nil { inbound = bytes } else { inbound!.writeBuffer(&bytes) }
        parseInbound()
    }

    /// Parses what was read, as far as the exchange in flight allows.
    private func parseInbound() {
        guard !parsing else { return }
        parsing = true
        defer { parsing = false }
        var holding = false
        // Until the decoder needs bytes: a body can end with no byte left to read.
        while !lingering, context != nil {
            if tunnel {
                if let bytes = inbound { inbound = nil; events?.receiveData(bytes, endStream: false) }
                break
            }
            if decoder.isAtMessageStart {
                guard let bytes = inbound, bytes.readableBytes > 0 else { break }
                if !(requestComplete && responseComplete) {
                    holding = true
                    break
                }
            }
            var bytes = inbound ?? emptyBody
            inbound = nil  // unshared while the decoder consumes it
            let event = decoder.next(&bytes)
            if bytes.readableBytes > 0 { inbound = bytes }
            switch event {
            case .needMoreBytes:
                // An upgrade's first tunnel bytes wait for its 101 (or for the refusal that closes).
                if inbound != nil { holding = upgradeRequested && !requestComplete }
            case .failed(let error):
                inbound = nil
                failRequest(status: error.status)
                return
            case .head(let head):
                receiveHead(head)
                continue
            case .body(let data):
                events?.receiveData(data, endStream: false)
                continue
            case .end(let trailers):
                receiveEnd(trailers)
                continue
            }
            break
        }
        if holding {
            heldForPipelining = true
            readPaused = true
        } else if heldForPipelining {
            heldForPipelining = false
            setRequestReadingPaused(false)
        }
    }

    private func receiveHead(_ h: HTTP1RequestHeadFields) {
        if let refusal = Self.refusal(of: h) { return sendErrorAndClose(status: refusal) }
        wait(for: .exchange)
        minorVersion = h.minorVersion
        keepAlive = h.keepAlive && !draining
        requestComplete = false
        responseComplete = false
        responseHeadSent = false
        requestIsHEAD = h.method == "HEAD"
        upgradeRequested = h.upgrade
        // An upgrade request's "body" is the tunnel that may follow; it ends when the connection does.
        requestEndSwallowed = h.framing == .none && !upgradeRequested
        let head = RequestHead(method: h.method, scheme: connectionInfo.isTLS ? "https" : "http",
                               authority: h.host ?? "", path: h.target, headers: h.headers,
                               version: h.minorVersion == 0 ? .http10 : .http11)
        let stream = factory.makeStream(downstream: self)
        events = stream
        stream.receiveHead(head, endStream: requestEndSwallowed)
        if requestEndSwallowed {
            requestComplete = true
            if responseComplete { exchangeDone() }
        }
    }

    private func receiveEnd(_ trailers: HTTPHeaders?) {
        requestComplete = true
        if let trailers { events?.receiveTrailers(trailers) }
        else { events?.receiveData(emptyBody, endStream: true) }
        if responseComplete { exchangeDone() }
    }

    // MARK: responses out

    package func sendResponseHead(_ head: ResponseHead, endStream: Bool) {
        guard let context else { return }
        responseHeadSent = true
        var connection: StaticString?
        if !keepAlive { connection = "close" }
        else if minorVersion == 0 { connection = "keep-alive" }
        if !endStream, minorVersion == 0, !head.headers.contains(name: "content-length") {
            // HTTP/1.0 has no chunked encoding: the body ends when the connection does.
            keepAlive = false
            connection = "close"
        }
        let switching = upgradeRequested && head.status == 101
        if switching { connection = "upgrade" }
        else if upgradeRequested, !endStream { keepAlive = false }
        if !switching, endStream, !requestComplete, !requestEndSwallowed, keepAlive {
            // Answered before the request body arrived (a local reply): say we will close.
            keepAlive = false
            connection = "close"
        }
        var buffer = out ?? context.channel.allocator.buffer(capacity: 512)
        let written = HTTP1Writer.writeHead(status: head.status, reason: head.reason, minorVersion: minorVersion,
                                                    headers: head.headers, connection: connection, into: &buffer)
        out = buffer
        // A field that may not be sent: the response cannot be, so the exchange is abandoned.
        guard written.valid else { return abandonResponse() }
        responseFraming = requestIsHEAD ? .none : written.framing
        if switching {
            flushOut()
            return becomeTunnel()
        }
        if endStream { endResponse(nil) }
    }

    package func sendResponseData(_ data: ByteBuffer, endStream: Bool) {
        guard let context else { return }
        if tunnel {
            if data.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(data), promise: nil) }
            if endStream { responseComplete = true; events = nil; context.close(promise: nil) }
            return
        }
        if data.readableBytes > 0 { appendBody(data, context: context) }
        if endStream { endResponse(nil) } else { scheduleFlush(context) }
    }

    private func appendBody(_ data: ByteBuffer, context: ChannelHandlerContext) {
        switch responseFraming {
        case .none:
            return  // HEAD, 1xx, 204 and 304 have no body.
        case .chunked:
            var buffer = out ?? context.channel.allocator.buffer(capacity: data.readableBytes + 16)
            if data.readableBytes <= Self.copyLimit {
                HTTP1Writer.writeChunk(data, into: &buffer)
                out = buffer
            } else {
                HTTP1Writer.writeChunkSize(data.readableBytes, into: &buffer)
                context.write(wrapOutboundOut(buffer), promise: nil)
                context.write(wrapOutboundOut(data), promise: nil)
                var crlf = context.channel.allocator.buffer(capacity: 2)
                crlf.writeStaticString("\r\n")
                out = crlf
            }
        case .length, .untilClose:
            if data.readableBytes <= Self.copyLimit {
                var buffer = out ?? context.channel.allocator.buffer(capacity: data.readableBytes)
                buffer.writeImmutableBuffer(data)
                out = buffer
            } else {
                if let pending = out { context.write(wrapOutboundOut(pending), promise: nil) }
                out = nil
                context.write(wrapOutboundOut(data), promise: nil)
            }
        }
    }

    /// Hands the pending response bytes to the channel and flushes.
    private func flushOut() {
        guard let context else { return }
        if let pending = out {
            out = nil
            context.write(wrapOutboundOut(pending), promise: nil)
        }
        context.flush()
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
            me.flushOut()
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
        if responseFraming == .chunked {
            var buffer = out ?? context.channel.allocator.buffer(capacity: 8)
            let mark = buffer.writerIndex
            if !HTTP1Writer.writeLastChunk(trailers: trailers, into: &buffer) {
                // Trailers that may not be sent: the body stays unterminated and the connection closes.
                buffer.moveWriterIndex(to: mark)
                keepAlive = false
            }
            out = buffer
        }
        flushOut()
        // A response that ends while the request body is still coming leaves the connection
        // unusable (a body-less request's end is just not parsed yet).
        if !requestComplete && !requestEndSwallowed { keepAlive = false }
        if !keepAlive {
            context.close(promise: nil)
        } else if requestComplete {
            exchangeDone()
        }
    }

    /// A response that cannot be written: the client sees the connection close.
    private func abandonResponse() {
        out = nil
        let e = events
        events = nil
        responseComplete = true
        e?.downstreamReset()
        context?.close(promise: nil)
    }

    /// After a 101 the connection carries raw bytes both ways: inbound ones go to the
    /// stream as body, outbound ones are written as they come.
    private func becomeTunnel() {
        tunnel = true
        keepAlive = false
        wait(for: .exchange)
        parseInbound()
    }

    private func exchangeDone() {
        if draining { context?.close(promise: nil); return }
        wait(for: nextRequestStarted ? .requestHeaders : .idle)
        nextRequestStarted = false
        parseInbound()
        // A pause belonged to the finished exchange, unless the next request is held.
        if !heldForPipelining, readPaused { setRequestReadingPaused(false) }
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
        failRequest(status: 400)
    }

    /// Malformed input: answer once with the right status and close, never forward.
    private func failRequest(status: Int) {
        if lingering { return }
        if !responseComplete {
            // Mid-request: abandon the exchange; answer only if no response has started.
            events?.downstreamReset()
            events = nil
            guard !responseHeadSent else { context?.close(promise: nil); return }
        }
        sendErrorAndClose(status: status)
    }

    /// Answers a protocol error with a fixed response, then closes after a short linger so
    /// the client reads the answer instead of a reset.
    private func sendErrorAndClose(status: Int) {
        guard let context, context.channel.isActive, !lingering else { return }
        lingering = true
        responseComplete = true
        events = nil
        inbound = nil
        out = nil
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
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).assumeIsolated().whenComplete { _ in
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
    /// (Envoy answers 404 without a connect matcher).
    private static func refusal(of head: HTTP1RequestHeadFields) -> Int? {
        if head.method == "CONNECT" { return 404 }
        switch head.hostCount {
        case 0: return head.minorVersion >= 1 ? 400 : nil
        // A comma is no part of a host: it is two Host values folded into one line.
        case 1: return head.host!.utf8.contains(UInt8(ascii: ",")) ? 400 : nil
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
