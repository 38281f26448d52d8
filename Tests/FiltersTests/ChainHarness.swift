@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters
@testable import PluginTesting

/// The chain harness every filter test drives: a stream with the engine's real
/// FilterIterators in both directions, what reaches the upstream and the client recorded,
/// and the loop services a filter may ask for (timers, stats; no upstreams).
final class ChainHarness: StreamControl {
    let eventLoop: EventLoop
    var connectionInfo: ConnectionInfo
    var streamInfo = StreamInfo()
    let snapshot: ProxySnapshot
    var route: SelectedRoute?
    var onDownstreamWritabilityChanged: ((Bool) -> Void)?
    var isDownstreamWritable: Bool { true }

    let bufferLimit: Int
    let timers: LoopTimers
    /// Counted stats, by series key.
    let counters = HarnessStats()
    var stats: StatsScope? { counters }
    /// What httpCall() reaches; none unless a test sets one.
    var upstreamClient: UpstreamClient?
    var upstream: UpstreamClient? { upstreamClient }
    var drainRequested = false
    func drainConnectionUponCompletion() { drainRequested = true }

    private(set) var filters: [HTTPFilter] = []
    private var chain: FilterChain!

    var upstreamHead: RequestHead?
    /// What reached the upstream side, in order.
    var upstreamOrder: [String] = []
    var upstreamBody = ByteBuffer()
    var upstreamEnded = false
    var upstreamTrailers: HTTPHeaders?
    var clientHead: ResponseHead?
    var clientBody = ByteBuffer()
    var localReply: (status: Int, body: String, headers: HTTPHeaders)?
    var routeCacheClears = 0
    var completed = false

    init(eventLoop: EventLoop, factories: [HTTPFilterFactory], bufferLimit: Int = 1 << 20,
         bootstrap: Bootstrap = Bootstrap()) throws {
        self.eventLoop = eventLoop
        self.bufferLimit = bufferLimit
        self.timers = LoopTimers(eventLoop: eventLoop)
        connectionInfo = ConnectionInfo(remoteAddress: try SocketAddress(ipAddress: "192.0.2.7", port: 5555),
                                        localAddress: try SocketAddress(ipAddress: "10.1.1.1", port: 8080))
        snapshot = try ProxySnapshot.build(bootstrap, version: 1, registry: FilterCatalog.registry)
        filters = factories.map { $0.makeFilter(stream: self) }
        chain = FilterChain(filters: filters, bufferLimit: bufferLimit, upstream: FilterSink(
            headers: { [unowned self] h, end in
                self.upstreamOrder.append("headers")
                self.upstreamHead = h
                if end { self.upstreamEnded = true }
            },
            data: { [unowned self] d, end in
                self.upstreamOrder.append("data:\(d.readableBytes):\(end)")
                var d = d
                self.upstreamBody.writeBuffer(&d)
                if end { self.upstreamEnded = true }
            },
            trailers: { [unowned self] t in
                self.upstreamOrder.append("trailers")
                self.upstreamTrailers = t
                self.upstreamEnded = true
            },
            overflow: { [unowned self] in self.sendLocalReply(status: 413, body: "too large", headers: [:], flag: nil, from: nil) },
            pressure: { _ in }),
        client: FilterSink(
            headers: { [unowned self] h, _ in self.clientHead = h },
            data: { [unowned self] d, _ in var d = d; self.clientBody.writeBuffer(&d) },
            trailers: { _ in }, overflow: {}, pressure: { _ in }))
    }

    // MARK: driving

    func sendRequest(method: String = "GET", path: String = "/", headers: [(String, String)] = [],
                     body: [String] = [], trailers: [(String, String)]? = nil) {
        let head = RequestHead(method: method, scheme: "http", authority: "example.com", path: path,
                               headers: HTTPHeaders(headers), version: .http11)
        streamInfo.forwardedFor = head.headers.first(name: "x-forwarded-for")
        chain.receiveRequest(.headers(head, end: body.isEmpty && trailers == nil))
        for (i, chunk) in body.enumerated() {
            chain.receiveRequest(.data(ByteBuffer(string: chunk), end: i == body.count - 1 && trailers == nil))
        }
        if let trailers { chain.receiveRequest(.trailers(HTTPHeaders(trailers))) }
    }

    /// The request headers alone: the body follows with `sendRequestData`.
    func sendRequestHeaders(method: String = "POST", path: String = "/", headers: [(String, String)] = []) {
        let head = RequestHead(method: method, scheme: "http", authority: "example.com", path: path,
                               headers: HTTPHeaders(headers), version: .http11)
        chain.receiveRequest(.headers(head, end: false))
    }

    func sendRequestData(_ chunk: String, end: Bool) {
        chain.receiveRequest(.data(ByteBuffer(string: chunk), end: end))
    }

    func sendResponse(status: Int = 200, headers: [(String, String)] = [], body: [String] = []) {
        chain.receiveResponse(.headers(ResponseHead(status: status, headers: HTTPHeaders(headers)), end: body.isEmpty))
        for (i, chunk) in body.enumerated() {
            chain.receiveResponse(.data(ByteBuffer(string: chunk), end: i == body.count - 1))
        }
    }

    func complete() {
        guard !completed else { return }
        completed = true
        chain.complete()
    }

    var upstreamBodyString: String { String(buffer: upstreamBody) }

    func upstream(_ name: String) -> String? { upstreamHead?.headers.first(name: name) }
    func client(_ name: String) -> String? { clientHead?.headers.first(name: name) }
    /// A dynamic metadata value that is a string (the typed value: `streamInfo.dynamicMetadata`).
    func dynamic(_ ns: String, _ key: String) -> String? { streamInfo.dynamicMetadata[ns]?[key]?.stringValue }

    // MARK: StreamControl

    func clearRouteCache() { routeCacheClears += 1 }
    func continueRequest(from filter: HTTPFilter) { chain.continueRequest(from: filter) }
    func continueResponse(from filter: HTTPFilter) { chain.continueResponse(from: filter) }
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead?, replacingData data: ByteBuffer?) {
        chain.continueRequest(from: filter, replacingHead: head, replacingData: data)
    }
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead?, replacingData data: ByteBuffer?) {
        chain.continueResponse(from: filter, replacingHead: head, replacingData: data)
    }

    /// The engine's local-reply path: the reply passes the response filters before the sender.
    func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, flag: ResponseFlag?, from filter: HTTPFilter?) {
        guard localReply == nil else { return }
        if let flag { streamInfo.addFlag(flag) }
        localReply = (status, body, headers)
        clientBody = ByteBuffer()
        let head = chain.sendLocalReply(status: status, body: body, headers: headers, from: filter)
        localReply = (status, body, head.headers)
    }

    func encodeHeaders(_ head: ResponseHead, endStream: Bool) { chain.receiveResponse(.headers(head, end: endStream)) }
    func encodeData(_ data: ByteBuffer, endStream: Bool) { chain.receiveResponse(.data(data, end: endStream)) }
    func encodeTrailers(_ trailers: HTTPHeaders) { chain.receiveResponse(.trailers(trailers)) }
    func resetStream(flag: ResponseFlag?) { chain.abort() }
    func setRequestReadingPaused(_ paused: Bool) {}
}

final class HarnessStats: StatsScope {
    var values: [String: Int] = [:]
    var histograms: [String: HistogramCounts] = [:]
    func count(_ key: String, _ n: Int) { values[key, default: 0] += n }
    func observe(_ key: String, _ value: Double, bounds: HistogramBounds) {
        histograms[key, default: HistogramCounts(bounds: bounds)].observe(value)
    }
}

enum LuaTest {
    static func factory(_ code: String, failStrategy: String = "FAIL_OPEN", instructions: Int? = nil,
                        memoryBytes: Int? = nil, pluginConfig: JSONValue? = nil,
                        name: String = "test", limits more: [String: JSONValue] = [:]) throws -> LuaFilterFactory {
        var config: [String: JSONValue] = ["name": .string(name), "inlineCode": .string(code),
                                           "failStrategy": .string(failStrategy)]
        var limits = more
        if let instructions { limits["instructions"] = .number(Double(instructions)) }
        if let memoryBytes { limits["memoryBytes"] = .number(Double(memoryBytes)) }
        if !limits.isEmpty { config["limits"] = .object(limits) }
        if let pluginConfig { config["pluginConfig"] = pluginConfig }
        return try LuaFilterFactory.build(.object(config)) as! LuaFilterFactory
    }

    static func vm(_ factory: LuaFilterFactory, _ loop: EventLoop) -> LuaVM {
        factory.vm(for: loop)!
    }
}

/// A snapshot from bootstrap YAML, with every native filter and extension registered.
func buildSnapshot(_ yaml: String) throws -> ProxySnapshot {
    try ProxySnapshot.build(try BootstrapLoader.parse(yaml), version: 1, registry: FilterCatalog.registry)
}
