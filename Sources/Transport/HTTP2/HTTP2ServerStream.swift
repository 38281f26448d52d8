import NIOCore
import NIOHTTP1
import MeshAPI

/// One request stream on a downstream HTTP/2 connection, as the engine sees it.
package final class HTTP2ServerStream: HTTP2StreamBase, DownstreamStream {
    package let connectionInfo: ConnectionInfo
    /// Set once the request head is delivered; cleared when the stream closes.
    package var events: DownstreamStreamEvents?
    /// The request HEADERS were processed (a second HEADERS block is trailers).
    package var requestStarted = false
    private var finalHeadSent = false
    /// The engine reset the stream itself; it is not told about the close.
    package private(set) var engineReset = false

    package init(session: HTTP2Session, streamID: Int32, connectionInfo: ConnectionInfo) {
        self.connectionInfo = connectionInfo
        super.init(session: session, streamID: streamID)
    }

    package var eventLoop: EventLoop { session.eventLoop }

    package func drainConnection() { (session.owner as? HTTP2ServerCodec)?.startGracefulShutdown() }

    private var canSend: Bool { !closed && !engineReset && session.isActive }

    package func sendResponseHead(_ head: ResponseHead, endStream: Bool) {
        guard canSend, !finalHeadSent else { return }
        if head.status >= 100 && head.status < 200 {
            // Informational (e.g. 100-continue); 101 has no meaning in HTTP/2.
            if head.status != 101 { session.submitInformational(self, status: head.status, headers: head.headers) }
        } else {
            finalHeadSent = true
            outEnded = endStream
            session.submitResponse(self, status: head.status, headers: head.headers, withBody: !endStream)
        }
        session.scheduleFlush()
    }

    package func sendResponseData(_ data: ByteBuffer, endStream: Bool) {
        guard canSend, finalHeadSent else { return }
        enqueueOutbound(data, endStream: endStream)
    }

    package func sendResponseTrailers(_ trailers: HTTPHeaders) {
        guard canSend, finalHeadSent, !outEnded else { return }
        outTrailers = trailers
        enqueueOutbound(ByteBuffer(), endStream: true)
    }

    package func reset() {
        guard canSend else { return }
        engineReset = true
        discardInbound()
        session.submitReset(streamID, errorCode: H2.internalError)
        session.scheduleFlush()
    }

    package var isWritable: Bool { isOutboundWritable }

    package func setRequestReadingPaused(_ paused: Bool) {
        setReadPaused(paused)
    }

    package override func deliverData(_ data: ByteBuffer, endStream: Bool) {
        events?.receiveData(data, endStream: endStream)
    }

    package override func deliverTrailers(_ trailers: HTTPHeaders) {
        events?.receiveTrailers(trailers)
    }

    package override func deliverWritable() {
        if !closed { events?.streamWritabilityChanged(true) }
    }

    /// nghttp2 closed the stream (or the connection died): release the engine's
    /// object, telling it about the reset unless the exchange completed.
    package func finish(errorCode: UInt32) {
        discardInbound()
        guard let events else { return }
        self.events = nil
        if engineReset { return }
        let complete = localEnded && (deliveredEnd || errorCode == H2.noError)
        if !complete { events.downstreamReset() }
    }
}
