import CNghttp2
import NIOCore
import NIOHTTP1
import MeshAPI

/// The role-specific half of a connection: the server codec or the client connection.
/// Called from nghttp2 callbacks (inside `receive`/`flush`), on the event loop.
package protocol HTTP2SessionOwner: AnyObject {
    /// The peer opens stream `streamID` with a request; return the stream to track it.
    func sessionOpensStream(_ streamID: Int32) -> HTTP2StreamBase?
    /// A complete header block arrived on `stream`.
    func sessionReceivedHeaders(_ stream: HTTP2StreamBase, endStream: Bool)
    /// RST_STREAM, SETTINGS, PING, GOAWAY (and other non-stream frames) received.
    func sessionReceivedControlFrame(_ frame: UnsafePointer<nghttp2_frame>)
    /// A non-DATA, non-HEADERS frame was serialized.
    func sessionSentControlFrame(_ frame: UnsafePointer<nghttp2_frame>)
    /// nghttp2 closed the stream, or `errorCode == H2.connectionLost` on teardown.
    func sessionClosedStream(_ stream: HTTP2StreamBase, errorCode: UInt32)
    /// Output was handed to the channel; time to check for shutdown and notify.
    func sessionDidFlush()
    /// A fatal library error: the connection must close.
    func sessionFailed()
    /// A header block (request, response or trailers) began on `streamID`.
    func sessionBeganHeaderBlock(_ streamID: Int32)
    /// The peer crossed a flood limit; GOAWAY(ENHANCE_YOUR_CALM) is on its way.
    func sessionExceededFrameLimit(_ violation: HTTP2FloodCounter.Violation)
}

extension HTTP2SessionOwner {
    package func sessionBeganHeaderBlock(_ streamID: Int32) {}
    package func sessionExceededFrameLimit(_ violation: HTTP2FloodCounter.Violation) {}
}

/// Owns one nghttp2 session and moves bytes between it and the channel.
/// Shared by the server codec and the client connection; everything runs on
/// the channel's event loop, so there are no locks.
package final class HTTP2Session {
    /// The nghttp2_session; nil before `start` and after `teardown`.
    package private(set) var raw: OpaquePointer?
    package unowned let owner: HTTP2SessionOwner
    package let eventLoop: EventLoop
    package let maxHeaderListSize: Int
    /// Decoded bytes of one header block past which decoding stops (the stream is reset).
    package let headerBlockHardLimit: Int
    /// Decoded bytes of the header block being received.
    package var headerBlockBytes = 0
    /// Inbound flood accounting; nil where no limits apply (our own upstream connections).
    package var floodCounter: HTTP2FloodCounter?
    package let encoder = HTTP2HeaderEncoder()
    /// Strong references to every stream nghttp2 knows about, by id.
    package var streams: [Int32: HTTP2StreamBase] = [:]
    /// Streams whose queue drained below the low watermark during `flush`.
    package var writableNotifications: [HTTP2StreamBase] = []
    /// Set by the owner between channelRead and channelReadComplete: output waits for the batch end.
    package var inReadBatch = false
    /// A `read()` held back while our output was backed up.
    private var readHeld = false

    private var context: ChannelHandlerContext?
    private var allocator = ByteBufferAllocator()
    /// > 0 while inside nghttp2 (or a flush): nghttp2 must not be re-entered or freed then.
    private var depth = 0
    package private(set) var freePending = false
    private var flushScheduled = false
    /// Output of the current flush round, written to the channel as one buffer.
    private var output: ByteBuffer?
    private var writeBuffers = ReusableWriteBuffer(maxKept: 16 * 1024)
    /// The buffer being parsed, so DATA payloads can be sliced instead of copied.
    private var input: ByteBuffer?
    private var inputBase: UnsafeRawPointer?

    /// Bytes serialized per flush round before nghttp2 is paused and the buffer written.
    package static let outputBudget = 256 * 1024
    /// DATA chunks at least this large (or at least half their read buffer) are sliced
    /// from the read buffer; smaller ones are copied, so a tiny chunk kept by a paused
    /// or buffering consumer cannot pin a whole read buffer.
    package static let sliceThreshold = 8 * 1024

    package init(owner: HTTP2SessionOwner, eventLoop: EventLoop, maxHeaderListSize: Int,
                 frameLimits: HTTP2FrameLimits? = nil) {
        self.owner = owner
        self.eventLoop = eventLoop
        self.maxHeaderListSize = maxHeaderListSize
        self.headerBlockHardLimit = maxHeaderListSize * HTTP2ServerSettings.headerBlockHardLimitFactor
        self.floodCounter = frameLimits.map(HTTP2FloodCounter.init(limits:))
    }

    /// Counts an inbound frame against the flood limits; past one, the session ends with
    /// GOAWAY(ENHANCE_YOUR_CALM) and nghttp2 ignores everything the peer sends after it.
    package func countInboundFrame(type: UInt8, flags: UInt8, payload: Int) {
        guard let raw, floodCounter != nil,
              let violation = floodCounter!.received(type: type, payload: payload,
                                                    endStream: flags & H2.flagEndStream != 0,
                                                    endHeaders: flags & H2.flagEndHeaders != 0) else { return }
        floodCounter = nil
        _ = nghttp2_session_terminate_session(raw, H2.enhanceYourCalm)
        owner.sessionExceededFrameLimit(violation)
    }

    deinit {
        // Normally freed by teardown(); this only covers a handler that was never removed.
        if let raw { nghttp2_session_del(raw) }
    }

    package var isActive: Bool { raw != nil }

    /// Creates the nghttp2 session and queues our SETTINGS and connection window.
    package func start(context: ChannelHandlerContext, server: Bool, settings: [nghttp2_settings_entry],
               connectionWindowSize: Int) -> Bool {
        self.context = context
        self.allocator = context.channel.allocator
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { return false }
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else { return false }
        defer { nghttp2_option_del(option) }
        // We return flow-control credit ourselves (nghttp2_session_consume) as the
        // consumer accepts data, so a paused stream closes the peer's window.
        nghttp2_option_set_no_auto_window_update(option, 1)
        // Closed streams are not kept for the RFC 7540 dependency tree (Envoy sets the same):
        // priorities referring to them are rare, and keeping up to 100 closed streams per
        // connection costs memory and tree upkeep on every stream.
        nghttp2_option_set_no_closed_streams(option, 1)
        let userData = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        let rv = server
            ? nghttp2_session_server_new2(&session, callbacks, userData, option)
            : nghttp2_session_client_new2(&session, callbacks, userData, option)
        guard rv == 0, let session else { return false }
        raw = session
        _ = settings.withUnsafeBufferPointer {
            nghttp2_submit_settings(session, H2.flagNone, $0.baseAddress, $0.count)
        }
        _ = nghttp2_session_set_local_window_size(session, H2.flagNone, 0, H2.window(connectionWindowSize))
        return true
    }

    // MARK: Input

    /// Feeds one read from the channel to nghttp2; callbacks run inside.
    // MARK: Channel events shared by the server codec and the client connection

    /// One inbound chunk of a read batch; the output is flushed at `readBatchComplete`.
    package func receiveInBatch(_ buffer: ByteBuffer) {
        inReadBatch = true
        receive(buffer)
    }

    package func readBatchComplete() {
        inReadBatch = false
        flush()
    }

    /// Stops reading the socket while our output is backed up, so a peer that does not
    /// read cannot make us queue unbounded replies (PING/SETTINGS acks).
    package func read(_ context: ChannelHandlerContext) {
        if context.channel.isWritable { context.read() } else { readHeld = true }
    }

    package func writabilityChanged(_ context: ChannelHandlerContext) {
        guard context.channel.isWritable else { return }
        flush()
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    package func receive(_ buffer: ByteBuffer) {
        guard let raw, buffer.readableBytes > 0 else { return }
        depth += 1
        input = buffer
        let rv = buffer.withUnsafeReadableBytes { bytes -> Int in
            inputBase = bytes.baseAddress
            return nghttp2_session_mem_recv(raw, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        input = nil
        inputBase = nil
        depth -= 1
        if finishPendingTeardown() { return }
        if rv < 0 { owner.sessionFailed() }
    }

    /// A DATA payload nghttp2 points at: a slice of the read buffer when possible.
    package func inputBytes(_ pointer: UnsafePointer<UInt8>, _ length: Int) -> ByteBuffer {
        if let input, let base = inputBase, length >= Self.sliceThreshold || length * 2 >= input.capacity {
            let offset = UnsafeRawPointer(pointer) - base
            if offset >= 0, offset + length <= input.readableBytes,
               let slice = input.getSlice(at: input.readerIndex + offset, length: length) {
                return slice
            }
        }
        var copy = allocator.buffer(capacity: length)
        copy.writeBytes(UnsafeRawBufferPointer(start: pointer, count: length))
        return copy
    }

    // MARK: Output

    package func appendOutput(_ bytes: UnsafeRawBufferPointer) {
        reserveOutput(bytes.count)
        output!.writeBytes(bytes)
    }

    package func reserveOutput(_ count: Int) {
        if output == nil {
            output = writeBuffers.take(capacity: max(count, 4096), allocator: allocator)
        } else if output!.writableBytes < count {
            output!.reserveCapacity(minimumWritableBytes: count)
        }
    }

    package var outputSize: Int { output?.readableBytes ?? 0 }

    /// Asks for a flush soon: at the end of the read batch if one is running,
    /// by the running flush loop, or else on the next event-loop tick (coalescing calls).
    package func scheduleFlush() {
        guard raw != nil, depth == 0, !inReadBatch, !flushScheduled else { return }
        flushScheduled = true
        // Always called on the event loop (all session state is loop-bound).
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            if flushScheduled { flush() }
        }
    }

    /// Serializes queued frames and writes them, while the channel stays writable.
    package func flush() {
        flushScheduled = false
        guard let raw, let context, depth == 0 else { return }
        depth += 1
        var failed = false
        var unflushed = false
        var rounds = 0
        while rounds < 16 && context.channel.isWritable && !freePending {
            rounds += 1
            if nghttp2_session_send(raw) != 0 { failed = true; break }
            if let buffer = output {
                output = nil
                context.write(NIOAny(buffer), promise: nil)
                writeBuffers.keep(buffer)
                unflushed = true
            }
            notifyWritableStreams()
            if freePending || nghttp2_session_want_write(raw) == 0 { break }
            // More to send (we paused at the budget): push this round out first.
            context.flush()
            unflushed = false
        }
        if unflushed { context.flush() }
        depth -= 1
        if finishPendingTeardown() { return }
        if failed { owner.sessionFailed(); return }
        if rounds == 16 && nghttp2_session_want_write(raw) != 0 { scheduleFlush() }
        owner.sessionDidFlush()
    }

    private func notifyWritableStreams() {
        guard !writableNotifications.isEmpty else { return }
        let streams = writableNotifications
        writableNotifications = []
        for stream in streams { stream.deliverWritable() }
    }

    /// Closes the channel once everything written so far has left (waiting at most
    /// `closeFlushTimeout`), so a final GOAWAY is not discarded by the close.
    package func closeAfterPendingWrites() {
        guard let context else { return }
        let channel = context.channel
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0)), promise: written)
        let deadline = context.eventLoop.scheduleTask(in: Self.closeFlushTimeout) { channel.close(promise: nil) }
        written.futureResult.whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    package static let closeFlushTimeout = TimeAmount.seconds(1)

    // MARK: Teardown

    /// Frees the nghttp2 session and tells every remaining stream the connection is gone.
    /// Deferred while nghttp2 is on the stack (e.g. the engine closed the channel from a callback).
    package func teardown() {
        guard let session = raw else { return }
        if depth > 0 { freePending = true; return }
        raw = nil
        freePending = false
        output = nil
        writeBuffers.drop()
        context = nil
        let remaining = streams.sorted { $0.key < $1.key }
        streams.removeAll()
        writableNotifications.removeAll()
        for (_, stream) in remaining {
            stream.sessionClosed()
            owner.sessionClosedStream(stream, errorCode: H2.connectionLost)
        }
        nghttp2_session_del(session)
    }

    private func finishPendingTeardown() -> Bool {
        guard freePending, depth == 0 else { return false }
        teardown()
        return true
    }
}
