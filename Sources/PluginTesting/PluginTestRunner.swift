import CLua
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import FilterHost
import Filters
import Transport
import LuaRuntime

/// What one offline run of a plugin produced (`meshd plugin test`).
public struct PluginTestResult: Sendable {
    public struct LogLine: Sendable, Equatable {
        public let level: Logger.Level
        public let message: String
    }

    public struct ScriptError: Sendable, Equatable {
        /// "top-level code", "envoy_on_request" or "envoy_on_response".
        public let phase: String
        /// Lua's message, with the chunk name and line ("name:12: attempt to ...").
        public let message: String
    }

    /// The request as the router would send it upstream.
    public struct UpstreamRequest: Sendable {
        public let head: RequestHead
        public let body: [UInt8]
        public let trailers: HTTPHeaders?
        /// The whole request (through the end of the body) got there.
        public let complete: Bool
    }

    /// The response as the client would receive it.
    public struct ClientResponse: Sendable {
        public let head: ResponseHead
        public let body: [UInt8]
        public let trailers: HTTPHeaders?
        public let complete: Bool
    }

    public struct LocalReply: Sendable {
        public enum Origin: String, Sendable {
            /// The script called respond().
            case respond
            /// The script failed and failStrategy is FAIL_CLOSE.
            case failClose = "failStrategy FAIL_CLOSE"
            /// A buffered body outgrew the buffer limit.
            case bufferLimit = "buffer limit"
        }
        public let status: Int
        public let headers: HTTPHeaders
        public let body: String
        public let origin: Origin
    }

    /// An httpCall() the script made; offline, each is answered 503 "upstream failure".
    public struct HTTPCall: Sendable, Equatable {
        public let cluster: String
        public let method: String
        public let path: String
        public let authority: String
        public let asynchronous: Bool
    }

    public var upstreamRequest: UpstreamRequest?
    public var response: ClientResponse?
    public var localReply: LocalReply?
    /// Lines the script wrote (handle:logInfo() and friends, print()), in order.
    public var logs: [LogLine] = []
    public var errors: [ScriptError] = []
    public var dynamicMetadata: [String: [String: JSONValue]] = [:]
    public var routeCacheClears = 0
    public var httpCalls: [HTTPCall] = []
    /// The stream did not finish: the plugin still held something when the run ended.
    public var stalls: [String] = []
    /// The request or response the run printed could not go on the wire as it is
    /// (content-length against the body, header syntax, a body where none may be).
    public var invalid: [String] = []

    public var succeeded: Bool { errors.isEmpty && stalls.isEmpty && invalid.isEmpty }
}

/// The VM could not be made (no memory for a Lua state).
public struct PluginTestUnavailable: Error, CustomStringConvertible, Sendable {
    public var description: String { "cannot create a Lua state" }
}

/// Runs a Lua plugin offline, with no network: a described request goes through the real
/// LuaFilter and filter iterators to a recording "upstream", a described response comes
/// back through them to a recording "client". The VM lives as long as the runner, so
/// several runs share globals and `meshd.shared` dictionaries as requests on one event
/// loop of the proxy would. Not thread-safe: use it from one thread.
public final class PluginTestRunner {
    public let plugin: LuaPluginConfig
    private let config: PluginTestConfig
    private let loop = EmbeddedEventLoop()
    private let vm: LuaVM
    private let logs = PluginTestLogCollector()
    private var httpCallsRef = LUA_NOREF
    private var requestIDs = RequestIDGenerator()
    private let route: SelectedRoute?

    /// Compiles and loads the plugin (its top-level code runs here). Throws
    /// `LuaCompileError` for a syntax error, `ConfigError` for a bad setting.
    public init(source: String, name: String, config: PluginTestConfig = PluginTestConfig()) throws {
        let name = config.name ?? name
        let script = try LuaScript(source: source, name: name)
        plugin = LuaPluginConfig(name: name, script: script, failStrategy: config.failStrategy,
                                 limits: config.limits, pluginConfig: config.pluginConfig, modules: config.modules)
        self.config = config
        let collector = logs
        let logger = Logger(label: "meshd.lua") { _ in PluginTestLogHandler(collector: collector) }
        guard let vm = LuaVM(plugin: plugin, library: LuaFilterLibrary.shared, logger: logger) else { throw PluginTestUnavailable() }
        self.vm = vm
        route = try Self.makeRoute(config)
        installOfflineHTTPCall()
    }

    /// Runs one request (and, when it reaches the upstream, `response`) through the plugin.
    public func run(request: PluginTestRequest, response: PluginTestResponse = PluginTestResponse()) throws -> PluginTestResult {
        var result = PluginTestResult()
        let connection = ConnectionInfo(remoteAddress: try PluginTestInput.socketAddress(config.remoteAddress),
                                        localAddress: try PluginTestInput.socketAddress(config.localAddress),
                                        isTLS: config.tls, serverName: config.serverName,
                                        alpn: config.tls ? (request.protocolVersion == .http2 ? "h2" : "http/1.1") : nil)
        let stream = PluginTestStream(eventLoop: loop, connectionInfo: connection, route: route,
                                      bufferLimit: config.bufferLimitBytes)
        let filter = LuaFilter(factory: LuaFilterFactory(version: LuaPluginVersion(config: plugin, vm: vm, on: loop)),
                               stream: stream)
        stream.attach(filter)

        // Top-level code that failed fails every run.
        if let error = vm.loadError { result.errors.append(.init(phase: "top-level code", message: error)) }

        // The request, as the proxy prepares it before the filters.
        var head = RequestHead(method: request.method, scheme: request.scheme, authority: request.authority,
                               path: request.path, headers: HTTPHeaders(request.headers), version: request.protocolVersion)
        HeaderSanitizer.prepareRequest(&head, connection: connection, requestIDs: &requestIDs)
        stream.streamInfo.startWallTime = Date().timeIntervalSince1970
        stream.streamInfo.protocolVersion = head.version
        stream.streamInfo.method = head.method
        stream.streamInfo.path = head.path
        stream.streamInfo.authority = head.authority
        stream.streamInfo.userAgent = head.headers.first(name: "user-agent")
        stream.streamInfo.requestID = head.headers.first(name: "x-request-id")
        stream.streamInfo.forwardedFor = head.headers.first(name: "x-forwarded-for")

        var errorsBefore = vm.errors
        let hasTrailers = request.trailers != nil
        stream.receiveRequest(.headers(head, end: request.body.isEmpty && !hasTrailers))
        for (i, chunk) in request.body.enumerated() {
            stream.receiveRequest(.data(ByteBuffer(string: chunk), end: i == request.body.count - 1 && !hasTrailers))
        }
        if let trailers = request.trailers { stream.receiveRequest(.trailers(HTTPHeaders(trailers))) }
        recordErrors(&result, phase: "envoy_on_request", since: errorsBefore)

        errorsBefore = vm.errors
        if stream.localReply == nil, stream.upstreamHead != nil {
            // The upstream answers once it has the request.
            var head = ResponseHead(status: response.status, headers: HTTPHeaders(response.headers))
            HeaderSanitizer.prepareResponse(&head)
            let responseTrailers = response.trailers
            stream.encodeHeaders(head, endStream: response.body.isEmpty && responseTrailers == nil)
            loop.run()
            for (i, chunk) in response.body.enumerated() {
                stream.encodeData(ByteBuffer(string: chunk), endStream: i == response.body.count - 1 && responseTrailers == nil)
                loop.run()
            }
            if let responseTrailers {
                stream.encodeTrailers(HTTPHeaders(responseTrailers))
                loop.run()
            }
        }
        recordErrors(&result, phase: "envoy_on_response", since: errorsBefore)

        // What is still held when both sides are done.
        if stream.upstreamHead == nil, stream.localReply == nil {
            result.stalls.append("the request never reached the upstream: the plugin still holds it"
                                 + Self.describe(filter.req.wait))
        } else if stream.upstreamHead != nil, !stream.upstreamEnded, stream.localReply == nil {
            result.stalls.append("the request body never finished reaching the upstream" + Self.describe(filter.req.wait))
        }
        if stream.clientHead == nil {
            if stream.upstreamHead != nil || stream.localReply != nil {
                result.stalls.append("the response never reached the client: the plugin still holds it"
                                     + Self.describe(filter.resp.wait))
            }
        } else if !stream.clientEnded {
            result.stalls.append("the response body never finished reaching the client" + Self.describe(filter.resp.wait))
        }
        if stream.wasReset { result.stalls.append("the stream was reset") }

        stream.complete()
        loop.run()

        if let head = stream.upstreamHead {
            let up = PluginTestResult.UpstreamRequest(head: head, body: Array(buffer: stream.upstreamBody),
                                                      trailers: stream.upstreamTrailers, complete: stream.upstreamEnded)
            result.upstreamRequest = up
            result.invalid += PluginTestMessageCheck.request(up)
        }
        if let head = stream.clientHead {
            let response = PluginTestResult.ClientResponse(head: head, body: Array(buffer: stream.clientBody),
                                                           trailers: stream.clientTrailers, complete: stream.clientEnded)
            result.response = response
            result.invalid += PluginTestMessageCheck.response(response, requestMethod: request.method)
        }
        if let reply = stream.localReply {
            result.localReply = .init(status: reply.status, headers: reply.headers, body: reply.body, origin: reply.origin)
        }
        result.dynamicMetadata = stream.streamInfo.dynamicMetadata
        result.routeCacheClears = stream.routeCacheClears
        result.httpCalls = takeHTTPCalls()
        result.logs = logs.take().filter { !isEngineFailureLine($0) }
        return result
    }

    private func recordErrors(_ result: inout PluginTestResult, phase: String, since before: Int) {
        guard vm.errors > before, let message = vm.lastError else { return }
        // A script whose top-level code failed fails each handler the same way: reported once a run.
        if message == vm.loadError { return }
        result.errors.append(.init(phase: phase, message: message))
    }

    /// The filter's own "plugin failed" log lines: the runner reports those as errors.
    private func isEngineFailureLine(_ line: PluginTestResult.LogLine) -> Bool {
        line.level == .error && (line.message.hasPrefix("lua plugin \(plugin.name) failed in envoy_on_")
                                 || line.message.hasPrefix("lua plugin top-level code failed: "))
    }

    private static func describe(_ wait: LuaWait) -> String {
        switch wait {
        case .body: return " (waiting in body())"
        case .chunk: return " (waiting in bodyChunks())"
        case .trailers: return " (waiting in trailers())"
        case .httpCall: return " (waiting in httpCall())"
        case .none, .respond: return ""
        }
    }

    /// The route the plugin sees: `config.routeName`, with `config.routeMetadata` as its
    /// meshd.lua metadata. Built through the bootstrap's decoder, as the proxy would.
    private static func makeRoute(_ config: PluginTestConfig) throws -> SelectedRoute {
        var route: [String: JSONValue] = [
            "name": .string(config.routeName),
            "match": .object(["prefix": .string("/")]),
            "route": .object(["cluster": .string("upstream")]),
        ]
        if let metadata = config.routeMetadata {
            route["perFilterConfig"] = .object([LuaFilterFactory.name: .object(["metadata": metadata])])
        }
        let data = try JSONEncoder().encode(JSONValue.object(route))
        let decoded = try JSONDecoder().decode(Route.self, from: data)
        return SelectedRoute(virtualHost: "plugin-test", compiled: try CompiledRoute(decoded, at: "route"))
    }

    // MARK: httpCall offline

    /// Offline there is no cluster to call: httpCall validates its headers as Envoy does,
    /// is recorded, and answers like a failed call (503, body "upstream failure"); an
    /// asynchronous call returns nothing. It never waits.
    private static let offlineHTTPCall = """
    local calls = ...
    local type, error, tostring = type, error, tostring
    return function(self, cluster, headers, body, timeout, asynchronous)
      if type(headers) ~= "table" or headers[":method"] == nil or headers[":path"] == nil
          or headers[":authority"] == nil then
        error("http call headers must include ':path', ':method', and ':authority'", 2)
      end
      if type(timeout) == "table" then asynchronous = timeout.asynchronous end
      calls[#calls + 1] = {
        cluster = tostring(cluster), method = tostring(headers[":method"]), path = tostring(headers[":path"]),
        authority = tostring(headers[":authority"]), asynchronous = asynchronous and true or false,
      }
      if asynchronous then return end
      return { [":status"] = "503" }, "upstream failure"
    end
    """

    private func installOfflineHTTPCall() {
        let L = vm.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        lua_rawgeti(L, meshd_lua_registryindex(), lua_Integer(vm.metatables[Int(LuaKind.handle.rawValue)]))
        guard lua_getfield(L, -1, "__index") == LUA_TTABLE,
              LuaScript.load(L, source: Self.offlineHTTPCall, name: "meshd.plugin-test") == LUA_OK else { return }
        meshd_lua_newtable(L)
        lua_pushvalue(L, -1)
        httpCallsRef = luaL_ref(L, meshd_lua_registryindex())
        guard meshd_lua_pcall(L, 1, 1, 0) == LUA_OK else { return }
        lua_setfield(L, -2, "httpCall")
    }

    /// The calls recorded since the last run; the list is emptied.
    private func takeHTTPCalls() -> [PluginTestResult.HTTPCall] {
        guard httpCallsRef != LUA_NOREF else { return [] }
        let L = vm.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        lua_rawgeti(L, meshd_lua_registryindex(), lua_Integer(httpCallsRef))
        let n = Int(lua_rawlen(L, -1))
        guard n > 0 else { return [] }
        var calls: [PluginTestResult.HTTPCall] = []
        func field(_ name: String) -> String {
            lua_getfield(L, -1, name)
            defer { meshd_lua_pop(L, 1) }
            return LuaObjects.string(L, -1) ?? ""
        }
        for i in 1...n {
            lua_rawgeti(L, -1, lua_Integer(i))
            lua_getfield(L, -1, "asynchronous")
            let async = lua_toboolean(L, -1) != 0
            meshd_lua_pop(L, 1)
            calls.append(.init(cluster: field("cluster"), method: field("method"), path: field("path"),
                               authority: field("authority"), asynchronous: async))
            meshd_lua_pop(L, 1)
        }
        for i in 1...n {
            lua_pushnil(L)
            lua_rawseti(L, -2, lua_Integer(i))
        }
        return calls
    }
}

// MARK: - log capture

/// Collects the plugin's log lines; shared with the (Sendable) log handler.
final class PluginTestLogCollector: Sendable {
    private let lines = NIOLockedValueBox<[PluginTestResult.LogLine]>([])

    func append(_ line: PluginTestResult.LogLine) { lines.withLockedValue { $0.append(line) } }

    /// The lines so far (the first run also gets those of the top-level code).
    func take() -> [PluginTestResult.LogLine] {
        lines.withLockedValue { l in
            defer { l.removeAll() }
            return l
        }
    }
}

struct PluginTestLogHandler: LogHandler {
    let collector: PluginTestLogCollector
    var metadata: Logger.Metadata = [:]
    /// Every level: the run shows what the script wrote at any level.
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        collector.append(.init(level: event.level, message: event.message.description))
    }
}

// MARK: - the stream

/// A stream over the engine's `FilterChain` with recording ends; the
/// local-reply path is HTTPStream's (the reply passes the filters between its sender and
/// the client, so a plugin's own envoy_on_response does not see its respond()).
final class PluginTestStream: StreamControl {
    let eventLoop: EventLoop
    let connectionInfo: ConnectionInfo
    var streamInfo = StreamInfo()
    let snapshot: ProxySnapshot
    let route: SelectedRoute?
    var onDownstreamWritabilityChanged: ((Bool) -> Void)?
    var isDownstreamWritable: Bool { true }
    let bufferLimit: Int
    let timers: LoopTimers
    /// Offline: no loop stats, no upstreams (httpCall answers "not available").
    var stats: StatsScope? { nil }
    var upstream: UpstreamClient? { nil }
    private(set) var drainRequested = false
    private let embedded: EmbeddedEventLoop

    private var chain: FilterChain!

    private(set) var upstreamHead: RequestHead?
    private(set) var upstreamBody = ByteBuffer()
    private(set) var upstreamTrailers: HTTPHeaders?
    private(set) var upstreamEnded = false
    private(set) var clientHead: ResponseHead?
    private(set) var clientBody = ByteBuffer()
    private(set) var clientTrailers: HTTPHeaders?
    private(set) var clientEnded = false
    private(set) var localReply: (status: Int, body: String, headers: HTTPHeaders, origin: PluginTestResult.LocalReply.Origin)?
    private(set) var routeCacheClears = 0
    private(set) var wasReset = false
    private var completed = false

    init(eventLoop: EmbeddedEventLoop, connectionInfo: ConnectionInfo, route: SelectedRoute?, bufferLimit: Int) {
        self.eventLoop = eventLoop
        self.embedded = eventLoop
        self.connectionInfo = connectionInfo
        self.route = route
        self.bufferLimit = bufferLimit
        self.timers = LoopTimers(eventLoop: eventLoop)
        // An empty snapshot cannot fail to build.
        snapshot = try! ProxySnapshot.build(Bootstrap(), version: 0, registry: FilterRegistry())
        streamInfo.routeName = route?.name
    }

    func attach(_ filter: HTTPFilter) {
        chain = FilterChain(filters: [filter], bufferLimit: bufferLimit, upstream: FilterSink(
            headers: { [unowned self] h, end in
                self.upstreamHead = h
                if end { self.upstreamEnded = true }
            },
            data: { [unowned self] d, end in
                var d = d
                self.upstreamBody.writeBuffer(&d)
                if end { self.upstreamEnded = true }
            },
            trailers: { [unowned self] t in
                self.upstreamTrailers = t
                self.upstreamEnded = true
            },
            overflow: { [unowned self] in
                self.sendLocalReply(status: 413, body: "Payload Too Large", headers: [:], flag: nil, from: nil)
            },
            pressure: { _ in }),
        client: FilterSink(
            headers: { [unowned self] h, end in
                self.clientHead = h
                self.streamInfo.responseCode = h.status
                if end { self.clientEnded = true }
            },
            data: { [unowned self] d, end in
                var d = d
                self.clientBody.writeBuffer(&d)
                if end { self.clientEnded = true }
            },
            trailers: { [unowned self] t in
                self.clientTrailers = t
                self.clientEnded = true
            },
            overflow: { [unowned self] in
                self.sendLocalReply(status: 500, body: "Internal Server Error", headers: [:], flag: nil, from: nil)
            },
            pressure: { _ in }))
    }

    /// One event from the client, then whatever the loop has queued (as between two reads).
    func receiveRequest(_ event: FilterIterator<RequestDirection>.Event) {
        chain.receiveRequest(event)
        embedded.run()
    }

    func complete() {
        guard !completed else { return }
        completed = true
        chain.complete()
    }

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
    func drainConnectionUponCompletion() { drainRequested = true }

    func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, flag: ResponseFlag?, from filter: HTTPFilter?) {
        guard localReply == nil, !completed else { return }
        if let flag { streamInfo.addFlag(flag) }
        guard clientHead == nil else { return resetStream(flag: flag) }
        // respond() leaves its reply on the run; a FAIL_CLOSE answer has none.
        let origin: PluginTestResult.LocalReply.Origin
        if let lua = filter as? LuaFilter { origin = lua.req.reply != nil ? .respond : .failClose } else { origin = .bufferLimit }
        localReply = (status, body, [:], origin)
        let head = chain.sendLocalReply(status: status, body: body, headers: headers, from: filter)
        localReply?.headers = head.headers
    }

    func encodeHeaders(_ head: ResponseHead, endStream: Bool) { chain.receiveResponse(.headers(head, end: endStream)) }
    func encodeData(_ data: ByteBuffer, endStream: Bool) { chain.receiveResponse(.data(data, end: endStream)) }
    func encodeTrailers(_ trailers: HTTPHeaders) { chain.receiveResponse(.trailers(trailers)) }

    func resetStream(flag: ResponseFlag?) {
        wasReset = true
        chain.abort()
    }

    func setRequestReadingPaused(_ paused: Bool) {}
}
