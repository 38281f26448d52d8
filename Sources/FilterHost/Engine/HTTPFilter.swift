import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// What a filter answers for a header block.
public enum FilterHeadersStatus: Sendable {
    case `continue`
    /// Hold the headers (and any body that follows) until the filter calls
    /// `continueRequest()` / `continueResponse()` on its stream.
    case stop
    /// Envoy's StopIteration: hold the headers here, but keep calling this filter for the
    /// body and trailers that follow. What it lets through queues behind the held headers
    /// until it calls `continueRequest()` / `continueResponse()`.
    case stopIteration
}

/// What a filter answers for a body chunk.
public enum FilterDataStatus: Sendable {
    case `continue`
    /// Keep collecting the body (up to the buffer limit) and call this filter again
    /// once with all of it and `endStream: true`.
    case stopAndBuffer
    /// Hold this chunk just past the filter, and everything behind it, until the filter
    /// calls `continueRequest()` / `continueResponse()` (which may replace the chunk).
    case stop
}

/// One HTTP filter instance, made per stream by its factory. Every method runs on the
/// stream's event loop. `endStream` on data means "no more body follows" (trailers may).
public protocol HTTPFilter: AnyObject {
    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus
    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus
    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus
    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus
    func onResponseData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus
    func onResponseTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus
    /// The stream is over (completed, reset or replaced by a local reply); release resources.
    func onStreamComplete()
}

extension HTTPFilter {
    public func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus { .continue }
    public func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus { .continue }
    public func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus { .continue }
    public func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus { .continue }
    public func onResponseData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus { .continue }
    public func onResponseTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus { .continue }
    public func onStreamComplete() {}
}

/// Builds a filter for each stream. Made once per config snapshot, shared by every
/// event loop, so it holds only immutable, parsed config.
public protocol HTTPFilterFactory: Sendable {
    func makeFilter(stream: StreamControl) -> HTTPFilter
}

/// Parses a filter's per-route config (a `perFilterConfig` entry) into the value its filter
/// reads back with `StreamControl.perRouteConfig(_:)`.
public typealias PerRouteConfigParser = @Sendable (_ config: JSONValue) throws -> any Sendable

/// Parses a filter's config into a factory. Errors are config errors, reported with the filter name.
public typealias HTTPFilterFactoryBuilder = @Sendable (_ config: JSONValue?) throws -> HTTPFilterFactory

/// A filter family that takes part in building a whole snapshot, not only its own
/// `httpFilters` entries: it may keep state from one snapshot to the next (Lua keeps its
/// plugin versions and their VMs), bind its listener entries to that state, and append
/// filters of its own to listeners' chains (Lua's `luaPlugins`). Runs off the data path.
public protocol ChainExtension: Sendable {
    /// This snapshot's part. `previous` is what the previous snapshot's part retained.
    func prepare(_ bootstrap: Bootstrap, routeTables: [String: RouteTable],
                 previous: (any Sendable)?) throws -> any ChainExtensionBuild
    /// Process-wide gauges this extension reports at `/stats/prometheus` (Lua: live VMs).
    func gauges() -> [String: Int]
}

/// One snapshot's part of a `ChainExtension`, used while the snapshot's chains are built.
public protocol ChainExtensionBuild {
    /// A factory made from a listener's `httpFilters` entry, bound to this snapshot's state
    /// (returned as it is when it is not this extension's).
    mutating func bind(_ factory: HTTPFilterFactory) -> HTTPFilterFactory
    /// Filters appended to `listener`'s chain after its `httpFilters`.
    func appended(for listener: Listener) -> [HTTPFilterFactory]
    /// What the next snapshot's `prepare` receives as `previous`.
    var retained: any Sendable { get }
}

extension ChainExtension {
    public func gauges() -> [String: Int] { [:] }
}

/// Filters known by name. Native filters register here at start-up (the Filters module).
public struct FilterRegistry: Sendable {
    private var builders: [String: HTTPFilterFactoryBuilder] = [:]
    /// Extensions by name, run in name order.
    private(set) var extensions: [(name: String, ext: ChainExtension)] = []

    public init() {}

    /// Per-route config parsers by filter name: a route's (or virtual host's)
    /// `perFilterConfig` entry is parsed once per snapshot, errors carrying its field path.
    private(set) var perRouteParsers: [String: PerRouteConfigParser] = [:]

    public mutating func register(_ name: String, _ builder: @escaping HTTPFilterFactoryBuilder,
                                  perRoute parser: PerRouteConfigParser? = nil) {
        builders[name] = builder
        if let parser { perRouteParsers[name] = parser }
    }

    public mutating func register(extension ext: ChainExtension, named name: String) {
        extensions.removeAll { $0.name == name }
        extensions.append((name, ext))
        extensions.sort { $0.name < $1.name }
    }

    public func builder(named name: String) -> HTTPFilterFactoryBuilder? { builders[name] }

    /// Network filters (`tcpProxy.networkFilters`) by name.
    private var networkBuilders: [String: NetworkFilterFactoryBuilder] = [:]

    public mutating func register(network name: String, _ builder: @escaping NetworkFilterFactoryBuilder) {
        networkBuilders[name] = builder
    }

    public func networkBuilder(named name: String) -> NetworkFilterFactoryBuilder? { networkBuilders[name] }

    public var names: [String] { builders.keys.sorted() }
}
