import NIOCore
import NIOHTTP1
import MeshAPI

/// One request on an upstream HTTP/2 connection, as the engine sees it.
package final class HTTP2ClientStream: HTTP2StreamBase, UpstreamRequest {
    private weak var connection: HTTP2ClientConnection?
    private var handler: UpstreamResponseHandler?
    private var headSent = false
    private var cancelled = false
    /// The final (non-1xx) response head arrived; later HEADERS are trailers.
    package var gotFinalHead = false
    /// The handler got its last call (complete response or failure).
    private var handlerDone = false
    /// Our slot in the connection's concurrency count was given back.
    private var released = false

    package init(session: HTTP2Session, connection: HTTP2ClientConnection, handler: UpstreamResponseHandler) {
        self.connection = connection
        self.handler = handler
        super.init(session: session, streamID: 0)
    }

    package func sendHead(_ head: RequestHead, endStream: Bool) {
        guard !headSent, !cancelled else { return }
        headSent = true
        let streamID = session.submitRequest(self, head: head, withBody: !endStream)
        guard streamID > 0 else {
            release()
            let reason = session.isActive ? "cannot open stream (\(streamID))" : "connection closed"
            // Not from inside the caller's sendHead: report on the next tick.
            session.eventLoop.assumeIsolated().execute { self.fail(.reset(reason)) }
            return
        }
        self.streamID = streamID
        session.streams[streamID] = self
        outEnded = endStream
        session.scheduleFlush()
    }

    package func sendData(_ data: ByteBuffer, endStream: Bool) {
        guard headSent, !cancelled else { return }
        enqueueOutbound(data, endStream: endStream)
    }

    package func sendTrailers(_ trailers: HTTPHeaders) {
        guard headSent, !cancelled, !outEnded else { return }
        outTrailers = trailers
        enqueueOutbound(ByteBuffer(), endStream: true)
    }

    package func cancel() {
        guard !cancelled else { return }
        cancelled = true
        handlerDone = true
        handler = nil
        discardInbound()
        if !headSent {
            release()
        } else if !closed {
            // The slot is released when nghttp2 closes the stream after the RST.
            session.submitReset(streamID, errorCode: H2.cancel)
            session.scheduleFlush()
        }
    }

    package var isWritable: Bool { isOutboundWritable }

    package func setResponseReadingPaused(_ paused: Bool) {
        setReadPaused(paused)
    }

    // MARK: Deliveries

    package func receivedHead(_ head: ResponseHead, endStream: Bool) {
        gotFinalHead = true
        if endStream { remoteEnded = true }
        enqueue(.head(head, endStream: endStream))
    }

    package override func deliverHead(_ head: ResponseHead, endStream: Bool) {
        guard let handler = takeHandler(final: endStream) else { return }
        handler.upstreamHead(head, endStream: endStream)
    }

    package override func deliverData(_ data: ByteBuffer, endStream: Bool) {
        guard let handler = takeHandler(final: endStream) else { return }
        handler.upstreamData(data, endStream: endStream)
    }

    package override func deliverTrailers(_ trailers: HTTPHeaders) {
        guard let handler = takeHandler(final: true) else { return }
        handler.upstreamTrailers(trailers)
    }

    package override func deliverWritable() {
        if !handlerDone { handler?.upstreamWritabilityChanged(true) }
    }

    /// The handler for one delivery; dropped after the final one.
    private func takeHandler(final: Bool) -> UpstreamResponseHandler? {
        let current = handler
        if final {
            handlerDone = true
            handler = nil
        }
        return current
    }

    /// Fails the exchange: RST if still open, then `upstreamFailed` once.
    package func failAndReset(_ failure: UpstreamFailure) {
        if !closed { session.submitReset(streamID, errorCode: H2.protocolError) }
        discardInbound()
        fail(failure)
    }

    private func fail(_ failure: UpstreamFailure) {
        guard !handlerDone else { return }
        handlerDone = true
        let current = handler
        handler = nil
        current?.upstreamFailed(failure)
    }

    /// nghttp2 closed the stream, or the connection died.
    package func finish(errorCode: UInt32) {
        release()
        if handlerDone {
            discardInbound()
        } else if remoteEnded {
            // The whole response is here, perhaps waiting behind a read pause: keep it.
        } else {
            discardInbound()
            if sentResetCode == H2.protocolError {
                fail(.protocolError("invalid HTTP/2 response"))
            } else {
                fail(.reset(errorCode == H2.noError ? "stream closed early" : H2.errorName(errorCode)))
            }
        }
    }

    private func release() {
        guard !released else { return }
        released = true
        connection?.streamReleased()
    }
}
