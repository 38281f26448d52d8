import NIOCore
import NIOHTTP1
import MeshAPI

/// Why an upstream exchange ended early; maps to Envoy's response flags.
public enum UpstreamFailure: Error, Sendable, Equatable {
    /// Could not connect (UF).
    case connectFailure(String)
    /// The connection closed or the stream was reset before the response completed (UC / UR).
    case reset(String)
    /// The upstream sent something that is not valid HTTP (UPE).
    case protocolError(String)
    /// A circuit breaker of the cluster is full; nothing was sent (UO).
    case overflow(String)
    /// Every endpoint of the cluster is ejected by outlier detection (UH).
    case noHealthyUpstream
}

/// One request in flight on an upstream connection. Calls happen on the connection's event loop.
public protocol UpstreamRequest: AnyObject {
    func sendHead(_ head: RequestHead, endStream: Bool)
    func sendData(_ data: ByteBuffer, endStream: Bool)
    func sendTrailers(_ trailers: HTTPHeaders)
    /// Abandons the request (RST_STREAM on HTTP/2; closes the connection on HTTP/1.1).
    func cancel()
    var isWritable: Bool { get }
    /// Backpressure on the response body.
    func setResponseReadingPaused(_ paused: Bool)
}

/// Receives one upstream response. Exactly one of: a complete response, or `upstreamFailed`.
public protocol UpstreamResponseHandler: AnyObject {
    func upstreamHead(_ head: ResponseHead, endStream: Bool)
    func upstreamData(_ data: ByteBuffer, endStream: Bool)
    func upstreamTrailers(_ trailers: HTTPHeaders)
    func upstreamWritabilityChanged(_ writable: Bool)
    func upstreamFailed(_ failure: UpstreamFailure)
}

/// A connected upstream connection that carries requests (HTTP/1.1: one at a time; HTTP/2: many).
public protocol UpstreamConnection: AnyObject {
    var eventLoop: EventLoop { get }
    /// True when `startStream` would succeed now.
    var canStartStream: Bool { get }
    var isClosed: Bool { get }
    func startStream(handler: UpstreamResponseHandler) -> UpstreamRequest?
    func close()
    /// Set by the pool: called when the connection can take a new stream again, or closed.
    var onStateChange: (() -> Void)? { get set }
}
