import MeshAPI
import NIOCore
import NIOHTTP1

/// What a filter may ask of its stream (Envoy's decoder/encoder filter callbacks).
public protocol StreamControl: AnyObject {
    var eventLoop: EventLoop { get }
    var connectionInfo: ConnectionInfo { get }
    var streamInfo: StreamInfo { get set }
    var snapshot: ProxySnapshot { get }
    /// The route for the request headers as they are now; computed once, until `clearRouteCache()`.
    var route: SelectedRoute? { get }
    /// The cached route, or the route selected from `head` (the request headers as a filter
    /// sees them, with the edits of the filters before it), which is then cached.
    func route(for head: RequestHead) -> SelectedRoute?
    /// Drops the cached route: the next lookup selects again from the headers as they are then.
    func clearRouteCache()
    /// Resume a direction that a filter stopped.
    func continueRequest(from filter: HTTPFilter)
    func continueResponse(from filter: HTTPFilter)
    /// Resume a direction whose headers `filter` holds, sending `head` in place of the held
    /// copy (a filter that edits the headers while holding them).
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead)
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead)
    /// Resume a direction, replacing what `filter` holds: the headers, and the body chunk
    /// (the held chunk, or the whole body waiting behind held headers).
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead?, replacingData data: ByteBuffer?)
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead?, replacingData data: ByteBuffer?)
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
    public func route(for head: RequestHead) -> SelectedRoute? { route }
    public func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead) { continueRequest(from: filter) }
    public func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead) { continueResponse(from: filter) }
    public func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead?, replacingData data: ByteBuffer?) {
        if let head { continueRequest(from: filter, replacingHead: head) } else { continueRequest(from: filter) }
    }
    public func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead?, replacingData data: ByteBuffer?) {
        if let head { continueResponse(from: filter, replacingHead: head) } else { continueResponse(from: filter) }
    }
}
