import NIOCore
import NIOHTTP1
import MeshAPI

/// An upstream HTTP/1.1 connection carrying one request at a time, kept alive between them.
/// The whole codec in one handler: the request head leaves in one write (`HTTP1Writer`),
/// the response is read off the socket's bytes (`HTTP1ResponseDecoder`).
package final class HTTP1ClientConnection: ChannelDuplexHandler, UpstreamConnection, UpstreamRequest, TimerTarget,
    DeferredFlushTarget {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private enum State { case idle, active, closed }
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var handler: UpstreamResponseHandler?
    private var decoder = HTTP1ResponseDecoder(maxHeadBytes: HTTP1ClientConnection.maxResponseHeadBytes)
    /// Read bytes not parsed yet; nil when all were.
    private var inbound: ByteBuffer?
    private var requestFraming = HTTP1BodyFraming.none
    private var requestDone = false
    private var responseDone = false
    private var keepAlive = true
    private var readPaused = false
    private var readPending = false
    private var idleTimer: LoopTimers.Token?
    private let timers: LoopTimers
    private var upgradeRequested = false
    private var tunnel = false
    private let idleTimeout: TimeAmount
    package var onStateChange: (() -> Void)?
    /// Where a complete request's flush waits for the end of the loop's event batch; nil: at once.
    private let flushes: LoopFlushBatch?

    /// NIO's decoder default, which this replaced.
    private static let maxResponseHeadBytes = 80 * 1024
    // Per connection, not a lazily initialised global checked on every read.
    private let emptyBody = ByteBuffer()
    /// Request heads are written one at a time, each flushed at once: one buffer serves them all.
    private var headBuffers = ReusableWriteBuffer(maxKept: 4096)

    package init(idleTimeout: TimeAmount, timers: LoopTimers, flushes: LoopFlushBatch? = nil) {
        self.idleTimeout = idleTimeout
        self.timers = timers
        self.flushes = flushes
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
        inbound = nil
        headBuffers.drop()
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
        return self
    }

    package func close() {
        context?.close(promise: nil)
    }

    // MARK: UpstreamRequest

    package func sendHead(_ head: RequestHead, endStream: Bool) {
        guard let context, state == .active else { return }
        upgradeRequested = isUpgradeRequest(head.headers)
        if upgradeRequested { keepAlive = false }
        decoder.expectResponse(toHEAD: head.method == "HEAD", upgrade: upgradeRequested)
        var buffer = headBuffers.take(capacity: 512, allocator: context.channel.allocator)
        let written = HTTP1Writer.writeRequestHead(head, endStream: endStream, upgrade: upgradeRequested, into: &buffer)
        guard written.valid else {
            let h = handler
            handler = nil
            h?.upstreamFailed(.protocolError("request head with a field that may not be sent"))
            return close()
        }
        requestFraming = written.framing
        context.write(wrapOutboundOut(buffer), promise: nil)
        headBuffers.keep(buffer)
        if endStream { endRequest(nil) } else { context.flush() }
    }

    package func sendData(_ data: ByteBuffer, endStream: Bool) {
        guard let context, state == .active else { return }
        if tunnel {
            if data.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(data), promise: nil) }
            if endStream { close() }
            return
        }
        if data.readableBytes > 0 {
            if requestFraming == .chunked {
                var size = context.channel.allocator.buffer(capacity: 12)
                HTTP1Writer.writeChunkSize(data.readableBytes, into: &size)
                context.write(wrapOutboundOut(size), promise: nil)
                context.write(wrapOutboundOut(data), promise: nil)
                context.write(wrapOutboundOut(Self.crlf), promise: nil)
            } else if requestFraming != .none {
                context.write(wrapOutboundOut(data), promise: nil)
            }
        }
        if endStream { endRequest(nil) } else { context.flush() }
    }

    private static let crlf = ByteBuffer(string: "\r\n")

    package func sendTrailers(_ trailers: HTTPHeaders) {
        guard state == .active else { return }
        endRequest(trailers)
    }

    private func endRequest(_ trailers: HTTPHeaders?) {
        guard let context else { return }
        requestDone = true
        if requestFraming == .chunked {
            var last = context.channel.allocator.buffer(capacity: 64)
            // Trailers that may not be sent are dropped; the body still ends.
            if !HTTP1Writer.writeLastChunk(trailers: trailers, into: &last) {
                last.clear()
                _ = HTTP1Writer.writeLastChunk(trailers: nil, into: &last)
            }
            context.write(wrapOutboundOut(last), promise: nil)
        }
        if let flushes { flushes.flushSoon(self) } else { context.flush() }
        if responseDone { becomeIdle() }
    }

    package func flushDeferred() {
        context?.flush()
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
        var bytes = unwrapInboundIn(data)
        if tunnel {
            handler?.upstreamData(bytes, endStream: false)
            return
        }
        // Bytes with no request out: nothing they can answer, so the connection is unusable.
        guard state == .active else { return close() }
        guard handler != nil else { return }
        if inbound == nil { inbound = bytes } else { inbound!.writeBuffer(&bytes) }
        parseInbound()
    }

    private func parseInbound() {
        // Until the decoder needs bytes: a body can end with no byte left to read.
        while state == .active, !tunnel, handler != nil {
            var bytes = inbound ?? emptyBody
            inbound = nil
            let event = decoder.next(&bytes)
            if bytes.readableBytes > 0 { inbound = bytes }
            guard deliver(event) else { return }
        }
        if tunnel, let bytes = inbound {
            inbound = nil
            handler?.upstreamData(bytes, endStream: false)
        }
    }

    /// Hands one decoder event to the stream; false when there is nothing more to read now.
    private func deliver(_ event: HTTP1ResponseDecoder.Event) -> Bool {
        guard let handler else { return false }
        switch event {
        case .needMoreBytes:
            return false
        case .failed(let error):
            inbound = nil
            self.handler = nil
            handler.upstreamFailed(.protocolError("\(error)"))
            close()
            return false
        case .head(let h, let framing):
            let head = ResponseHead(status: h.status, reason: h.reason, headers: h.headers)
            if h.status == 101, upgradeRequested {
                // After a 101 the connection carries raw bytes both ways until either side closes.
                tunnel = true
                keepAlive = false
                handler.upstreamHead(head, endStream: false)
                return true
            }
            keepAlive = keepAlive && h.keepAlive && framing != .untilClose
            handler.upstreamHead(head, endStream: framing == .none)
            if framing == .none { responseEnded() }
            return true
        case .body(let data):
            handler.upstreamData(data, endStream: false)
            return true
        case .end(let trailers):
            responseDone = true
            self.handler = nil
            if let trailers { handler.upstreamTrailers(trailers) }
            else { handler.upstreamData(emptyBody, endStream: true) }
            if !keepAlive { close() } else if requestDone { becomeIdle() }
            return true
        }
    }

    private func responseEnded() {
        responseDone = true
        handler = nil
        if !keepAlive { close() } else if requestDone { becomeIdle() }
    }

    private func becomeIdle() {
        guard state == .active else { return }
        // Bytes past the response answer nothing: the connection cannot be reused.
        guard inbound == nil else { return close() }
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
        // An until-close body ends with the connection: a complete response, not a failure.
        if state == .active, !tunnel, let event = decoder.inputEnded() { _ = deliver(event) }
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
        // A failed handshake (bad chain, wrong SAN) is a connect failure, as Envoy counts it (503 UF).
        if let tls = error as? TLSError { h?.upstreamFailed(.connectFailure("TLS error: \(tls.message)")) }
        else { h?.upstreamFailed(.reset("\(error)")) }
        context.close(promise: nil)
    }
}
