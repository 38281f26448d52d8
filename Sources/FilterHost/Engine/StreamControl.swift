import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

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

    // What the loop lends a filter (Envoy's factory context + callbacks): filters reach
    // timers, stats and upstreams only through these, never through the engine's types.

    /// The loop's timers.
    var timers: LoopTimers { get }
    /// Counters on the loop's stats; nil where no loop keeps stats (offline runs).
    var stats: StatsScope? { get }
    /// Connections to this snapshot's clusters (httpCall, auth calls, mirroring); nil where
    /// the stream has no upstreams (offline runs).
    var upstream: UpstreamClient? { get }
    /// The largest body a filter may buffer on this stream.
    var bufferLimit: Int { get }
    /// The most specific per-route config for the filter named `filterName` on the stream's
    /// route (the route's `perFilterConfig`, else its virtual host's); nil when neither has one.
    func perFilterConfig(_ filterName: String) -> JSONValue?
    /// Close the downstream connection once this stream completes (HTTP/1: `connection:
    /// close`; HTTP/2: GOAWAY), as Envoy's `drainConnectionUponCompletion()`.
    func drainConnectionUponCompletion()
}

/// Counters and histograms a filter adds to, by full series key (`name{label="v"}`).
/// A family's HELP text and type come from `MetricCatalog`.
public protocol StatsScope: AnyObject {
    func count(_ key: String, _ n: Int)
    /// Records `value` in the histogram series `key`, whose buckets are `bounds`.
    func observe(_ key: String, _ value: Double, bounds: HistogramBounds)
}

/// Hands out connections to a cluster's endpoints, picked by the cluster's policy: a
/// connection ready for a stream and the endpoint's address. Calls and answers happen on
/// the stream's loop.
public protocol UpstreamClient: AnyObject {
    func connection(for cluster: Cluster, _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void)
    /// The same, picking among endpoints not in `avoiding` ("address:port") while one is
    /// left (a retry's other host); returns the endpoint picked, when known.
    @discardableResult
    func connection(for cluster: Cluster, avoiding: Set<String>,
                    _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) -> String?
    /// The same, with the request's hash for a RING_HASH / MAGLEV cluster (nil: none).
    @discardableResult
    func connection(for cluster: Cluster, avoiding: Set<String>, hash: UInt64?,
                    _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) -> String?
    /// The same, leaving out the endpoints of priorities in `excludingPriorities` while another
    /// priority has a healthy one (a retry's previous_priorities).
    @discardableResult
    func connection(for cluster: Cluster, avoiding: Set<String>, excludingPriorities: Set<Int>, hash: UInt64?,
                    _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) -> String?
}

extension UpstreamClient {
    @discardableResult
    public func connection(for cluster: Cluster, avoiding: Set<String>,
                           _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) -> String? {
        connection(for: cluster, done)
        return nil
    }

    @discardableResult
    public func connection(for cluster: Cluster, avoiding: Set<String>, hash: UInt64?,
                           _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) -> String? {
        connection(for: cluster, avoiding: avoiding, done)
    }

    @discardableResult
    public func connection(for cluster: Cluster, avoiding: Set<String>, excludingPriorities: Set<Int>, hash: UInt64?,
                           _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) -> String? {
        connection(for: cluster, avoiding: avoiding, hash: hash, done)
    }
}

extension StreamControl {
    public func route(for head: RequestHead) -> SelectedRoute? { route }
    public func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead) {
        continueRequest(from: filter, replacingHead: head, replacingData: nil)
    }
    public func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead) {
        continueResponse(from: filter, replacingHead: head, replacingData: nil)
    }
    public func perFilterConfig(_ filterName: String) -> JSONValue? { route?.perFilterConfig(filterName) }

    /// The filter's per-route config as its registered parser made it, for the route of
    /// `head` (the headers as the filter holds them) or the stream's route: the route's
    /// own entry, else its virtual host's; nil when neither has one.
    public func perRouteConfig(_ filterName: String, for head: RequestHead? = nil) -> (any Sendable)? {
        guard let route = head.map({ self.route(for: $0) }) ?? route else { return nil }
        return snapshot.perRouteConfigs[route.compiled.id]?[filterName]
    }
}
