import CNghttp2
import NIOCore
import NIOHTTP1
import MeshAPI

/// Downstream HTTP/2 on top of nghttp2: plaintext bytes in and out, one
/// `DownstreamStream` per request handed to the factory's engine objects.
/// Sits directly after the socket or the TLS handler. Event-loop bound.
public final class HTTP2ServerCodec: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer

    private let factory: DownstreamStreamFactory
    private let connectionInfo: ConnectionInfo
    private let settings: HTTP2ServerSettings
    private var session: HTTP2Session!
    private var context: ChannelHandlerContext?
    private var started = false
    private var closing = false
    private let timers: LoopTimers?
    private var timer: LoopTimers.Token?
    private var waiting = Waiting.nothing
    /// The stream whose header block began and has not ended yet (CONTINUATIONs owed).
    private var pendingHeaderBlock: Int32?
    /// Told when the client crosses a flood limit (for the listener's counters).
    package var onFrameLimitExceeded: ((HTTP2FloodCounter.Violation) -> Void)?

    /// What the connection timer waits for.
    private enum Waiting: Equatable {
        case nothing
        /// No streams: GOAWAY and close after `idleTimeout`.
        case idle
        /// A header block is incomplete: close after `headerBlockTimeout`.
        case headerBlock(Int32)
    }

    private var resetCount = 0
    private var resetWindowStart = NIODeadline.uptimeNanoseconds(0)

    private enum Shutdown { case none, noticeSent, goawaySubmitted, goawaySent }
    private var shutdown = Shutdown.none
    private var shutdownTimer: Scheduled<Void>?
    /// PING payload that marks the graceful-shutdown round trip.
    private static let shutdownPing: UInt64 = 0x6d65_7368_6447_4f41

    /// - Parameter timers: the loop's timers; without them `idleTimeout` and
    ///   `headerBlockTimeout` do not apply.
    public init(factory: DownstreamStreamFactory, connectionInfo: ConnectionInfo,
                settings: HTTP2ServerSettings = .init(), timers: LoopTimers? = nil) {
        self.factory = factory
        self.connectionInfo = connectionInfo
        self.settings = settings
        self.timers = timers
    }

    // MARK: Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        session = HTTP2Session(owner: self, eventLoop: context.eventLoop,
                               maxHeaderListSize: settings.maxHeaderListSize, frameLimits: settings.frameLimits)
        if context.channel.isActive { start(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        session.receiveInBatch(unwrapInboundIn(data))
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        // The header-block and idle timers follow the state at the end of the read: a block
        // that began and ended within it (nearly every request) arms no timer at all.
        updateTimer()
        session.readBatchComplete()
        context.fireChannelReadComplete()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        session.writabilityChanged(context)
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        session.read(context)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        closeConnection()
    }

    // MARK: Graceful shutdown

    /// Sends a GOAWAY shutdown notice, then (after a PING round trip, or the notice
    /// timeout) the final GOAWAY with the last processed stream id; the connection
    /// closes once the streams still running have finished. Call on the event loop.
    public func startGracefulShutdown() {
        guard let context, let raw = session?.raw, shutdown == .none else { return }
        shutdown = .noticeSent
        _ = nghttp2_submit_shutdown_notice(raw)
        var payload = Self.shutdownPing.bigEndian
        _ = withUnsafeBytes(of: &payload) {
            nghttp2_submit_ping(raw, H2.flagNone, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        shutdownTimer = context.eventLoop.assumeIsolated().scheduleTask(in: settings.shutdownNoticeTimeout) {
            self.submitFinalGoaway()
        }
        session.scheduleFlush()
    }

    private func submitFinalGoaway() {
        guard shutdown == .noticeSent, let raw = session.raw else { return }
        shutdown = .goawaySubmitted
        shutdownTimer?.cancel()
        shutdownTimer = nil
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(raw)
        _ = nghttp2_submit_goaway(raw, H2.flagNone, lastStreamID, H2.noError, nil, 0)
        session.scheduleFlush()
    }

    // MARK: Helpers

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let entries = [
            nghttp2_settings_entry(settings_id: H2.settingsMaxConcurrentStreams,
                                   value: UInt32(clamping: settings.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: H2.settingsInitialWindowSize,
                                   value: UInt32(H2.window(settings.initialWindowSize))),
            nghttp2_settings_entry(settings_id: H2.settingsMaxHeaderListSize,
                                   value: UInt32(clamping: settings.maxHeaderListSize)),
        ]
        guard session.start(context: context, server: true, settings: entries,
                            connectionWindowSize: settings.connectionWindowSize) else {
            closeConnection()
            return
        }
        updateTimer()
        session.flush()
    }

    private func tearDown() {
        shutdownTimer?.cancel()
        shutdownTimer = nil
        timers?.cancel(timer)
        timer = nil
        session?.teardown()
    }

    // MARK: Connection timer

    /// One timer per connection: the incomplete header block if there is one, else idle
    /// while no stream is open, else none (streams have their own timeouts).
    private func updateTimer() {
        guard let timers, !closing, session.isActive else { return }
        let next: Waiting
        if let id = pendingHeaderBlock, settings.headerBlockTimeout != nil {
            next = .headerBlock(id)
        } else if session.streams.isEmpty, settings.idleTimeout != nil {
            next = .idle
        } else {
            next = .nothing
        }
        guard next != waiting else { return }
        timers.cancel(timer)
        timer = nil
        waiting = next
        switch next {
        case .nothing: break
        case .idle: timer = timers.arm(after: settings.idleTimeout!, self)
        case .headerBlock: timer = timers.arm(after: settings.headerBlockTimeout!, self)
        }
    }

    /// `graceful`: after our last frames (GOAWAY) are out; otherwise at once.
    private func closeConnection(graceful: Bool = false) {
        guard !closing else { return }
        closing = true
        if graceful {
            session.closeAfterPendingWrites()
        } else {
            context?.close(promise: nil)
        }
    }

    /// Counts client RST_STREAMs; too many per window is the "rapid reset" attack.
    private func countReset() {
        let now = NIODeadline.now()
        if now - resetWindowStart > settings.resetWindow {
            resetWindowStart = now
            resetCount = 0
        }
        resetCount += 1
        if resetCount > settings.maxResetsPerWindow, let raw = session.raw {
            _ = nghttp2_session_terminate_session(raw, H2.enhanceYourCalm)
        }
    }

    /// 431 for a request whose header block exceeded maxHeaderListSize; the engine never sees it.
    private func refuseOversizedRequest(_ stream: HTTP2ServerStream, endStream: Bool) {
        stream.discardInbound()
        stream.headerBlock.reset()
        session.submitResponse(stream, status: 431, headers: HTTPHeaders(), withBody: false)
        // Ask the client to stop sending the body (RFC 9113 §8.1).
        if !endStream { session.submitReset(stream.streamID, errorCode: H2.noError) }
    }
}

extension HTTP2ServerCodec: TimerTarget {
    public func timerFired(_ token: LoopTimers.Token) {
        guard token == timer, let raw = session.raw else { return }
        timer = nil
        switch waiting {
        case .nothing:
            return
        case .idle:
            guard session.streams.isEmpty else { return updateTimer() }
        case .headerBlock:
            break
        }
        waiting = .nothing
        // GOAWAY, then the connection closes once it is written (sessionDidFlush).
        _ = nghttp2_session_terminate_session(raw, H2.noError)
        session.flush()
    }
}

extension HTTP2ServerCodec: HTTP2SessionOwner {
    package func sessionBeganHeaderBlock(_ streamID: Int32) {
        // The timer is armed at the end of the read batch if the block is still incomplete.
        pendingHeaderBlock = streamID
    }

    package func sessionExceededFrameLimit(_ violation: HTTP2FloodCounter.Violation) {
        onFrameLimitExceeded?(violation)
    }

    package func sessionOpensStream(_ streamID: Int32) -> HTTP2StreamBase? {
        HTTP2ServerStream(session: session, streamID: streamID, connectionInfo: connectionInfo)
    }

    package func sessionReceivedHeaders(_ base: HTTP2StreamBase, endStream: Bool) {
        let stream = unsafeDowncast(base, to: HTTP2ServerStream.self)
        if pendingHeaderBlock == stream.streamID { pendingHeaderBlock = nil }
        if !stream.requestStarted {
            stream.requestStarted = true
            if stream.headerBlock.tooLarge {
                refuseOversizedRequest(stream, endStream: endStream)
                return
            }
            let head = stream.headerBlock.takeRequestHead()
            stream.headerBlock.reset()
            if endStream {
                stream.remoteEnded = true
                stream.deliveredEnd = true
            }
            let events = factory.makeStream(downstream: stream)
            stream.events = events
            events.receiveHead(head, endStream: endStream)
        } else if stream.headerBlock.tooLarge {
            stream.headerBlock.reset()
            session.submitReset(stream.streamID, errorCode: H2.protocolError)
        } else {
            let trailers = stream.headerBlock.takeHeaders()
            stream.headerBlock.reset()
            stream.trailersReceived(trailers)
        }
    }

    package func sessionReceivedControlFrame(_ frame: UnsafePointer<nghttp2_frame>) {
        let header = frame.pointee.hd
        if header.type == H2.rstStream {
            countReset()
        } else if header.type == H2.ping, header.flags & H2.flagAck != 0, shutdown == .noticeSent {
            let payload = withUnsafeBytes(of: frame.pointee.ping.opaque_data) { $0.loadUnaligned(as: UInt64.self) }
            if UInt64(bigEndian: payload) == Self.shutdownPing { submitFinalGoaway() }
        }
    }

    package func sessionSentControlFrame(_ frame: UnsafePointer<nghttp2_frame>) {
        if frame.pointee.hd.type == H2.goaway, shutdown == .goawaySubmitted,
           frame.pointee.goaway.last_stream_id != Int32.max {
            shutdown = .goawaySent
        }
    }

    package func sessionClosedStream(_ stream: HTTP2StreamBase, errorCode: UInt32) {
        unsafeDowncast(stream, to: HTTP2ServerStream.self).finish(errorCode: errorCode)
        if pendingHeaderBlock == stream.streamID { pendingHeaderBlock = nil }
        if errorCode != H2.connectionLost { updateTimer() }
    }

    package func sessionDidFlush() {
        guard let raw = session.raw else { return }
        let done = nghttp2_session_want_read(raw) == 0 && nghttp2_session_want_write(raw) == 0
        if done || (shutdown == .goawaySent && session.streams.isEmpty) {
            closeConnection(graceful: true)
        }
    }

    package func sessionFailed() {
        closeConnection()
    }
}
