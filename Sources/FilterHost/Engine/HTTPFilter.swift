import MeshAPI
import NIOCore
import NIOHTTP1

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

/// Parses a filter's config into a factory. Errors are config errors, reported with the filter name.
public typealias HTTPFilterFactoryBuilder = @Sendable (_ config: JSONValue?) throws -> HTTPFilterFactory

/// Filters known by name. Native filters register here at start-up (the Filters module).
public struct FilterRegistry: Sendable {
    private var builders: [String: HTTPFilterFactoryBuilder] = [:]

    public init() {}

    public mutating func register(_ name: String, _ builder: @escaping HTTPFilterFactoryBuilder) {
        builders[name] = builder
    }

    public func builder(named name: String) -> HTTPFilterFactoryBuilder? { builders[name] }

    public var names: [String] { builders.keys.sorted() }
}
