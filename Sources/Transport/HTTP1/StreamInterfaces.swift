import NIOCore
import NIOHTTP1
import MeshAPI

/// The codec's side of one downstream request/response exchange (an HTTP/1.1
/// request on a connection, or one HTTP/2 stream). Every call happens on `eventLoop`.
public protocol DownstreamStream: AnyObject {
    var eventLoop: EventLoop { get }
    var connectionInfo: ConnectionInfo { get }
    func sendResponseHead(_ head: ResponseHead, endStream: Bool)
    func sendResponseData(_ data: ByteBuffer, endStream: Bool)
    func sendResponseTrailers(_ trailers: HTTPHeaders)
    /// Abandons the exchange: RST_STREAM on HTTP/2, connection close on HTTP/1.1.
    func reset()
    /// False while the codec holds more unsent response bytes than it wants;
    /// the engine then stops reading the upstream until `streamWritabilityChanged(true)`.
    var isWritable: Bool { get }
    /// Backpressure on the request body: while paused the codec reads no more
    /// request data for this stream (HTTP/2: stops returning flow-control window).
    func setRequestReadingPaused(_ paused: Bool)
    /// Close the connection once this exchange is over (HTTP/1.1: `connection: close`;
    /// HTTP/2: a graceful GOAWAY, so other streams finish).
    func drainConnection()
}

/// The engine's side of a downstream exchange; the codec calls it, on the event loop.
public protocol DownstreamStreamEvents: AnyObject {
    func receiveHead(_ head: RequestHead, endStream: Bool)
    func receiveData(_ data: ByteBuffer, endStream: Bool)
    func receiveTrailers(_ trailers: HTTPHeaders)
    func streamWritabilityChanged(_ writable: Bool)
    /// The client went away or reset the stream before the exchange completed.
    func downstreamReset()
}

/// Creates the engine-side object for each new downstream stream.
public protocol DownstreamStreamFactory: AnyObject {
    func makeStream(downstream: DownstreamStream) -> DownstreamStreamEvents
}
