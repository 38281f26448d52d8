import FilterHost
import LuaRuntime
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// A CUSTOM policy's authorizer that is a Lua plugin (the mesh config's `meshdLuaPlugin`):
/// `{luaPlugin: <meshd.lua filter config>, failOpen, statusOnError}`. Its `envoy_on_request`
/// runs for the requests the policy matches: `respond()` denies with the plugin's answer,
/// returning allows (the header edits it made go upstream), and a failure (a script error, a
/// limit) answers `statusOnError` (default 403) or, with `failOpen`, lets the request go on
/// as it came, as Envoy's ext_authz does when its service fails.
struct LuaAuthorizer: Sendable {
    let factory: LuaFilterFactory
    let failOpen: Bool
    let statusOnError: Int

    static let knownKeys: Set<String> = ["luaPlugin", "failOpen", "statusOnError"]

    init(_ v: JSONValue, at path: String) throws {
        guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map") }
        for key in o.keys.sorted() where !Self.knownKeys.contains(key) {
            throw ConfigError(path: "\(path).\(key)", reason: "unknown field (known: \(Self.knownKeys.sorted().joined(separator: ", ")))")
        }
        let plugin: LuaPluginConfig
        do { plugin = try LuaPluginConfig(config: o["luaPlugin"]) } catch let e as ConfigError {
            throw ConfigError(path: "\(path).luaPlugin" + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
        }
        factory = LuaFilterFactory(plugin: plugin)
        (failOpen, statusOnError) = try ExtAuthzProvider.failure(o, at: path)
    }

    private init(factory: LuaFilterFactory, failOpen: Bool, statusOnError: Int) {
        self.factory = factory
        self.failOpen = failOpen
        self.statusOnError = statusOnError
    }

    /// The same authorizer running `version` (this snapshot's, shared with the previous one's
    /// when the plugin did not change: its VMs stay).
    func running(_ version: LuaPluginVersion) -> LuaAuthorizer {
        LuaAuthorizer(factory: LuaFilterFactory(version: version), failOpen: failOpen, statusOnError: statusOnError)
    }
}

/// One request's run of a Lua authorizer. The plugin runs as a LuaFilter inside the RBAC
/// filter, on this seam: what it asks of the stream goes to the real one, in the RBAC filter's
/// name, except how its check ends, which goes to the RBAC filter: a reply is the authorizer's
/// denial, letting the held headers go (or returning at once) its allowance.
final class LuaAuthzCheck: StreamControl {
    private enum State {
        case running
        /// The plugin failed and `failOpen` lets the request go on as it came.
        case failedOpen
        case settled
    }

    let provider: LuaAuthorizer
    private(set) var filter: LuaFilter!
    /// The request headers as they came, for a failure that lets the request through.
    private let original: RequestHead
    private var state = State.running
    private unowned let stream: StreamControl
    private unowned let owner: RBACFilter

    init(_ provider: LuaAuthorizer, head: RequestHead, stream: StreamControl, owner: RBACFilter) {
        self.provider = provider
        self.original = head
        self.stream = stream
        self.owner = owner
        filter = LuaFilter(factory: provider.factory, stream: self)
        filter.failureHandler = { [unowned self] _ in self.failed() }
    }

    /// The headers that go on now that the plugin let the request through: its edited ones, or
    /// the original ones after a failure with `failOpen`; nil once the check was settled.
    func settle(_ edited: RequestHead) -> (head: RequestHead, failedOpen: Bool)? {
        switch state {
        case .running:
            state = .settled
            return (edited, false)
        case .failedOpen:
            state = .settled
            return (original, true)
        case .settled:
            return nil
        }
    }

    /// A run that failed before it settled: `failOpen` lets it go on (true: the RBAC filter
    /// answered). One that fails later (a plugin still reading the body it allowed) changes nothing.
    private func failed() -> Bool {
        guard case .running = state else { return false }
        if provider.failOpen {
            state = .failedOpen
            return false
        }
        state = .settled
        owner.luaCheckFailed(provider)
        return true
    }

    // MARK: how the plugin's run ends

    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead?, replacingData data: ByteBuffer?) {
        if let passed = settle(head ?? original) {
            owner.luaCheckPassed(passed.head, data: data, failedOpen: passed.failedOpen)
        } else {
            stream.continueRequest(from: owner, replacingHead: head, replacingData: data)
        }
    }

    func continueRequest(from filter: HTTPFilter) {
        continueRequest(from: filter, replacingHead: nil, replacingData: nil)
    }

    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead) {
        continueRequest(from: filter, replacingHead: head, replacingData: nil)
    }

    func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, flag: ResponseFlag?, from filter: HTTPFilter?) {
        state = .settled
        owner.luaCheckDenied(status: status, body: body, headers: headers)
    }

    // MARK: the rest goes to the stream

    var eventLoop: EventLoop { stream.eventLoop }
    var connectionInfo: ConnectionInfo { stream.connectionInfo }
    var streamInfo: StreamInfo {
        get { stream.streamInfo }
        set { stream.streamInfo = newValue }
    }
    var snapshot: ProxySnapshot { stream.snapshot }
    var route: SelectedRoute? { stream.route }
    func route(for head: RequestHead) -> SelectedRoute? { stream.route(for: head) }
    func clearRouteCache() { stream.clearRouteCache() }
    func continueResponse(from filter: HTTPFilter) { stream.continueResponse(from: owner) }
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead) {
        stream.continueResponse(from: owner, replacingHead: head)
    }
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead?, replacingData data: ByteBuffer?) {
        stream.continueResponse(from: owner, replacingHead: head, replacingData: data)
    }
    func encodeHeaders(_ head: ResponseHead, endStream: Bool) { stream.encodeHeaders(head, endStream: endStream) }
    func encodeData(_ data: ByteBuffer, endStream: Bool) { stream.encodeData(data, endStream: endStream) }
    func encodeTrailers(_ trailers: HTTPHeaders) { stream.encodeTrailers(trailers) }
    func resetStream(flag: ResponseFlag?) { stream.resetStream(flag: flag) }
    func setRequestReadingPaused(_ paused: Bool) { stream.setRequestReadingPaused(paused) }
    var onDownstreamWritabilityChanged: ((Bool) -> Void)? {
        get { stream.onDownstreamWritabilityChanged }
        set { stream.onDownstreamWritabilityChanged = newValue }
    }
    var isDownstreamWritable: Bool { stream.isDownstreamWritable }
    var timers: LoopTimers { stream.timers }
    var stats: StatsScope? { stream.stats }
    var upstream: UpstreamClient? { stream.upstream }
    var bufferLimit: Int { stream.bufferLimit }
    func perFilterConfig(_ filterName: String) -> JSONValue? { stream.perFilterConfig(filterName) }
    func drainConnectionUponCompletion() { stream.drainConnectionUponCompletion() }
}
