import CNghttp2
import NIOCore
import NIOHTTP1
import MeshAPI

/// Something received on a stream, waiting while the consumer has reading paused.
package enum HTTP2InboundEvent {
    case head(ResponseHead, endStream: Bool)
    case data(ByteBuffer, endStream: Bool)
    case trailers(HTTPHeaders)
}

/// State shared by server and client streams: the inbound queue with its
/// flow-control accounting, and the outbound body queue behind the data provider.
/// Subclasses route the deliveries to the engine's events object or response handler.
package class HTTP2StreamBase {
    package final let session: HTTP2Session
    package final var streamID: Int32
    package final var headerBlock = HTTP2HeaderCollector()

    // Inbound.
    private final var heldChunk: ByteBuffer?
    /// Events held while reading is paused; allocated on first use (pausing is rare).
    private final var pending: CircularBuffer<HTTP2InboundEvent>?
    private final var readPaused = false
    private final var drainScheduled = false
    /// The peer's END_STREAM (or trailers) arrived.
    package final var remoteEnded = false
    /// The consumer has been handed the end of the inbound side.
    package final var deliveredEnd = false
    /// No consumer any more (reset, cancelled, refused): inbound data is only acknowledged.
    package final var detached = false

    // Outbound.
    private final var outQueue = OutboundBodyQueue()
    private final var queuedBytes = 0
    private final var providerDeferred = false
    /// The producer gave its last data (or trailers); the provider reports EOF once drained.
    package final var outEnded = false
    package final var outTrailers: HTTPHeaders?
    /// Our END_STREAM went out.
    package final var localEnded = false
    package final var sentResetCode: UInt32?
    package final var writable = true
    /// nghttp2 closed the stream (or the connection went away).
    package final var closed = false

    /// Queued response/request body above which the producer is told to stop.
    package static let highWatermark = 256 * 1024
    /// ... and below which it is told to go on.
    package static let lowWatermark = 64 * 1024

    package init(session: HTTP2Session, streamID: Int32) {
        self.session = session
        self.streamID = streamID
    }

    // MARK: Deliveries (overridden by the server and client streams)

    package func deliverHead(_ head: ResponseHead, endStream: Bool) {}
    package func deliverData(_ data: ByteBuffer, endStream: Bool) {}
    package func deliverTrailers(_ trailers: HTTPHeaders) {}
    package func deliverWritable() {}

    // MARK: Inbound

    /// Payload of a DATA frame. The last chunk of a frame is held back until the
    /// frame ends, so END_STREAM rides on the last data instead of an empty event.
    package final func dataChunk(_ chunk: ByteBuffer) {
        if detached {
            session.consume(self, chunk.readableBytes)
            return
        }
        if let previous = heldChunk { enqueue(.data(previous, endStream: false)) }
        heldChunk = chunk
    }

    package final func dataFrameEnded(endStream: Bool) {
        if endStream { remoteEnded = true }
        if detached { return }
        if let held = heldChunk {
            heldChunk = nil
            enqueue(.data(held, endStream: endStream))
        } else if endStream {
            enqueue(.data(ByteBuffer(), endStream: true))
        }
    }

    package final func trailersReceived(_ trailers: HTTPHeaders) {
        remoteEnded = true
        enqueue(.trailers(trailers))
    }

    package final func enqueue(_ event: HTTP2InboundEvent) {
        if detached {
            if case .data(let data, _) = event { session.consume(self, data.readableBytes) }
            return
        }
        if readPaused || hasPendingInbound {
            if pending == nil { pending = CircularBuffer(initialCapacity: 8) }
            pending!.append(event)
        } else {
            deliver(event)
        }
    }

    private final func deliver(_ event: HTTP2InboundEvent) {
        switch event {
        case .head(let head, let endStream):
            if endStream { deliveredEnd = true }
            deliverHead(head, endStream: endStream)
        case .data(let data, let endStream):
            // The consumer took it: return the window so the peer may send more.
            session.consume(self, data.readableBytes)
            if endStream { deliveredEnd = true }
            deliverData(data, endStream: endStream)
        case .trailers(let trailers):
            deliveredEnd = true
            deliverTrailers(trailers)
        }
    }

    /// While paused nothing is delivered or consumed, so the peer's window closes.
    package final func setReadPaused(_ paused: Bool) {
        readPaused = paused
        guard !paused, hasPendingInbound, !drainScheduled else { return }
        // Deliver on the next tick, not from inside the consumer's call.
        drainScheduled = true
        session.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            drainScheduled = false
            while !readPaused, !detached, let event = pending?.popFirst() {
                deliver(event)
            }
            session.scheduleFlush()
        }
    }

    package final var hasPendingInbound: Bool { pending.map { !$0.isEmpty } ?? false }

    /// Drops undelivered inbound data, returning its flow-control credit.
    package final func discardInbound() {
        detached = true
        var bytes = heldChunk?.readableBytes ?? 0
        heldChunk = nil
        while let event = pending?.popFirst() {
            if case .data(let data, _) = event { bytes += data.readableBytes }
        }
        pending = nil
        session.consume(self, bytes)
    }

    // MARK: Outbound

    package final var isOutboundWritable: Bool { writable }

    /// Queues body bytes for the data provider and wakes it if it was deferred.
    package final func enqueueOutbound(_ data: ByteBuffer, endStream: Bool) {
        guard !outEnded, !closed, session.isActive else { return }
        let count = data.readableBytes
        if count > 0 {
            outQueue.append(data)
            queuedBytes += count
            if queuedBytes > Self.highWatermark { writable = false }
        }
        if endStream { outEnded = true }
        guard count > 0 || endStream else { return }
        if providerDeferred {
            providerDeferred = false
            session.resumeData(streamID)
        }
        session.scheduleFlush()
    }

    /// nghttp2's data source read callback: how much to send now (NO_COPY), EOF,
    /// or NGHTTP2_ERR_DEFERRED until more is queued.
    package final func provideData(maxLength: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        if queuedBytes == 0 {
            guard outEnded else {
                providerDeferred = true
                return H2.errDeferred
            }
            flags.pointee |= H2.dataEOF | trailerFlags()
            return 0
        }
        let count = min(maxLength, queuedBytes)
        flags.pointee |= H2.dataNoCopy
        if count == queuedBytes && outEnded { flags.pointee |= H2.dataEOF | trailerFlags() }
        return count
    }

    /// Submits the trailers (allowed inside the read callback) so the last DATA omits END_STREAM.
    private final func trailerFlags() -> UInt32 {
        guard let trailers = outTrailers else { return 0 }
        outTrailers = nil
        return session.submitTrailers(self, trailers) ? H2.dataNoEndStream : 0
    }

    /// nghttp2's send_data callback: copies `length` queued bytes into the output.
    package final func writeQueuedData(_ length: Int, to session: HTTP2Session) {
        var remaining = length
        while remaining > 0, let first = outQueue.first {
            let take = min(first.readableBytes, remaining)
            first.withUnsafeReadableBytes { session.appendOutput(UnsafeRawBufferPointer(rebasing: $0.prefix(take))) }
            if take == first.readableBytes {
                outQueue.removeFirst()
            } else {
                outQueue.consumeFromFirst(take)
            }
            remaining -= take
        }
        queuedBytes -= length
        if !writable && queuedBytes <= Self.lowWatermark {
            writable = true
            session.writableNotifications.append(self)
        }
    }

    /// nghttp2 is done with the stream: drop the outbound queue. Inbound is the owner's call.
    package final func sessionClosed() {
        closed = true
        outQueue.removeAll()
        queuedBytes = 0
        outTrailers = nil
    }
}
