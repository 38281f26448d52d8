import CNghttp2
import NIOCore
import NIOHTTP1
import MeshAPI

/// Upstream HTTP/2 connection on top of nghttp2 (prior knowledge, or after TLS
/// negotiated h2): plaintext bytes in and out, many concurrent requests.
/// Add it to a connected channel's pipeline; everything happens on `eventLoop`.
public final class HTTP2ClientConnection: ChannelDuplexHandler, UpstreamConnection {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer

    public let eventLoop: EventLoop
    public var onStateChange: (() -> Void)?
    public private(set) var isClosed = false

    private let settings: HTTP2ClientSettings
    private var session: HTTP2Session!
    private var context: ChannelHandlerContext?
    private var started = false
    private var goawayReceived = false
    private var activeStreams = 0
    private var stateChangePending = false
    private var closeRequested = false

    public init(eventLoop: EventLoop, settings: HTTP2ClientSettings = .init()) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.session = nil
        self.session = HTTP2Session(owner: self, eventLoop: eventLoop, maxHeaderListSize: settings.maxHeaderListSize)
    }

    // MARK: UpstreamConnection

    public var canStartStream: Bool {
        guard started, !isClosed, !closeRequested, !goawayReceived, let raw = session.raw else { return false }
        // Until the server's SETTINGS arrive nghttp2 reports "unlimited"; our cap applies.
        let remoteLimit = Int(nghttp2_session_get_remote_settings(raw, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
        guard activeStreams < min(settings.maxConcurrentStreams, remoteLimit) else { return false }
        return nghttp2_session_get_next_stream_id(raw) < UInt32(Int32.max - 2)
    }

    public func startStream(handler: UpstreamResponseHandler) -> UpstreamRequest? {
        guard canStartStream else { return nil }
        activeStreams += 1
        return HTTP2ClientStream(session: session, connection: self, handler: handler)
    }

    /// Sends GOAWAY and closes; streams in flight fail with `.reset`.
    public func close() {
        guard !isClosed else { return }
        if let raw = session.raw {
            _ = nghttp2_session_terminate_session(raw, H2.noError)
            session.flush()
        }
        context?.close(promise: nil)
    }

    /// A stream gave its concurrency slot back.
    package func streamReleased() {
        activeStreams -= 1
        stateChangePending = true
        session.scheduleFlush()
    }

    // MARK: Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        connectionClosed()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        connectionClosed()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosed else { return }
        session.receiveInBatch(unwrapInboundIn(data))
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
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
        context.close(promise: nil)
    }

    // MARK: Helpers

    private func start(context: ChannelHandlerContext) {
        guard !started, !isClosed else { return }
        started = true
        let entries = [
            nghttp2_settings_entry(settings_id: H2.settingsEnablePush, value: 0),
            nghttp2_settings_entry(settings_id: H2.settingsInitialWindowSize,
                                   value: UInt32(H2.window(settings.initialWindowSize))),
            nghttp2_settings_entry(settings_id: H2.settingsMaxHeaderListSize,
                                   value: UInt32(clamping: settings.maxHeaderListSize)),
        ]
        guard session.start(context: context, server: false, settings: entries,
                            connectionWindowSize: settings.connectionWindowSize) else {
            context.close(promise: nil)
            return
        }
        session.flush()
    }

    private func connectionClosed() {
        guard !isClosed else { return }
        isClosed = true
        session.teardown()
        // Nothing can start here any more; let the pool drop us.
        stateChangePending = false
        onStateChange?()
    }
}

extension HTTP2ClientConnection: HTTP2SessionOwner {
    package func sessionOpensStream(_ streamID: Int32) -> HTTP2StreamBase? {
        nil  // Server push is disabled in our SETTINGS.
    }

    package func sessionReceivedHeaders(_ base: HTTP2StreamBase, endStream: Bool) {
        let stream = unsafeDowncast(base, to: HTTP2ClientStream.self)
        defer { stream.headerBlock.reset() }
        if stream.headerBlock.tooLarge {
            stream.failAndReset(.protocolError("response headers over \(settings.maxHeaderListSize) bytes"))
            return
        }
        if stream.gotFinalHead {
            stream.trailersReceived(stream.headerBlock.takeHeaders())
            return
        }
        let status = stream.headerBlock.status
        if status < 200 { return }  // 1xx informational heads are not forwarded.
        stream.receivedHead(ResponseHead(status: status, headers: stream.headerBlock.takeHeaders()),
                            endStream: endStream)
    }

    package func sessionReceivedControlFrame(_ frame: UnsafePointer<nghttp2_frame>) {
        let header = frame.pointee.hd
        if header.type == H2.goaway {
            goawayReceived = true
            stateChangePending = true
        } else if header.type == H2.settings, header.flags & H2.flagAck == 0 {
            stateChangePending = true  // The stream limit may have changed.
        }
    }

    package func sessionSentControlFrame(_ frame: UnsafePointer<nghttp2_frame>) {}

    package func sessionClosedStream(_ stream: HTTP2StreamBase, errorCode: UInt32) {
        unsafeDowncast(stream, to: HTTP2ClientStream.self).finish(errorCode: errorCode)
    }

    package func sessionDidFlush() {
        if let raw = session.raw, nghttp2_session_want_read(raw) == 0, nghttp2_session_want_write(raw) == 0 {
            // GOAWAY exchanged and no stream left, or a fatal protocol error.
            if !closeRequested {
                closeRequested = true
                session.closeAfterPendingWrites()
            }
        }
        if stateChangePending {
            stateChangePending = false
            onStateChange?()
        }
    }

    package func sessionFailed() {
        context?.close(promise: nil)
    }
}
