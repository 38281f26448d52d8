import MeshAPI
import NIOCore
import NIOHTTP1

/// What a filter may ask of its stream (Envoy's decoder/encoder filter callbacks).
public protocol StreamControl: AnyObject {
    var eventLoop: EventLoop { get }
    var connectionInfo: ConnectionInfo { get }
    var streamInfo: StreamInfo { get set }
    var snapshot: ProxySnapshot { get }
    /// The route for the current request headers; computed once, until `clearRouteCache()`.
    var route: SelectedRoute? { get }
    func clearRouteCache()
    /// Resume a direction that a filter stopped.
    func continueRequest(from filter: HTTPFilter)
    func continueResponse(from filter: HTTPFilter)
    /// Resume a direction whose headers `filter` holds, sending `head` in place of the held
    /// copy (a filter that edits the headers while holding them).
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead)
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead)
    /// Answer the client from here; the upstream side (if any) is abandoned.
    func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, flag: ResponseFlag?,
                        from filter: HTTPFilter?)
    /// The router feeds the upstream response in here; it runs through the response filters.
    func encodeHeaders(_ head: ResponseHead, endStream: Bool)
    func encodeData(_ data: ByteBuffer, endStream: Bool)
    func encodeTrailers(_ trailers: HTTPHeaders)
    /// Abandon the stream after the response started (reset downstream).
    func resetStream(flag: ResponseFlag?)
    /// Request-body backpressure towards the client.
    func setRequestReadingPaused(_ paused: Bool)
    /// Called when the client's side can take more response data again.
    var onDownstreamWritabilityChanged: ((Bool) -> Void)? { get set }
    var isDownstreamWritable: Bool { get }
}

extension StreamControl {
    public func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead) { continueRequest(from: filter) }
    public func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead) { continueResponse(from: filter) }
}
