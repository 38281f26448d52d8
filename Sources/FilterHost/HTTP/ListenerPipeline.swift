import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Chooses the codec for a new downstream connection: after TLS by ALPN ("h2" → HTTP/2),
/// in cleartext by the first bytes (the HTTP/2 connection preface → h2c prior knowledge).
/// Until then the request-header timeout runs from the accept, so a silent client, a
/// stalled TLS handshake or a partial preface cannot hold the connection.
final class ProtocolSelector: ChannelInboundHandler, RemovableChannelHandler, TimerTarget {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let setup: ConnectionSetup
    private var buffered: ByteBuffer?
    private var info: ConnectionInfo
    private let tls: Bool
    private var decided = false
    private let timers: LoopTimers
    private var timer: LoopTimers.Token?
    private var context: ChannelHandlerContext?

    init(setup: ConnectionSetup, info: ConnectionInfo, tls: Bool, timers: LoopTimers) {
        self.setup = setup
        self.info = info
        self.tls = tls
        self.timers = timers
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timer = timers.arm(after: setup.limits.timeouts.requestHeaders, from: setup.acceptedAt, self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timers.cancel(timer)
        timer = nil
        self.context = nil
    }

    func timerFired(_ token: LoopTimers.Token) {
        guard token == timer, !decided else { return }
        timer = nil
        // Nothing to answer yet (no HTTP spoken): just close.
        context?.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let done = event as? TLSHandshakeCompleted {
            info.isTLS = true
            info.alpn = done.negotiatedProtocol
            info.serverName = done.serverName
            info.tls = done.facts
            decide(context: context, http2: done.negotiatedProtocol == "h2")
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if decided { return context.fireChannelRead(data) }
        if tls {
            // Application data before the handshake event cannot happen; keep it anyway.
            buffered.setOrWriteImmutableBuffer(bytes)
            return
        }
        buffered.setOrWriteBuffer(&bytes)
        let view = buffered!.readableBytesView
        let n = min(view.count, Self.preface.count)
        if !view.prefix(n).elementsEqual(Self.preface.prefix(n)) {
            decide(context: context, http2: false)
        } else if n == Self.preface.count {
            decide(context: context, http2: true)
        }
    }

    private func decide(context: ChannelHandlerContext, http2: Bool) {
        guard !decided else { return }
        decided = true
        timers.cancel(timer)
        timer = nil
        do {
            try setup.installCodec(on: context.channel, after: self, info: info, http2: http2)
        } catch {
            context.close(promise: nil)
            return
        }
        let pending = buffered
        buffered = nil
        if let pending { context.fireChannelRead(wrapInboundOut(pending)) }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}

/// The per-listener recipe for a downstream connection's pipeline.
struct ConnectionSetup: Sendable {
    let listener: Listener
    let contexts: LoopContexts
    /// The TLS context of the snapshot this listener was bound with: used only when a swap
    /// has removed the listener and an accept was already under way.
    let boundTLSContext: TLSServerContext?
    let tracker: ConnectionTracker
    /// Set per connection by `initialize`: the limits in force at its accept, and when that was.
    private(set) var limits: ListenerLimits
    private(set) var acceptedAt = NIODeadline.uptimeNanoseconds(0)

    init(listener: Listener, contexts: LoopContexts, boundTLSContext: TLSServerContext?, tracker: ConnectionTracker) {
        self.listener = listener
        self.contexts = contexts
        self.boundTLSContext = boundTLSContext
        self.tracker = tracker
        self.limits = ListenerLimits(listener)
    }

    func initialize(_ channel: Channel) throws {
        let loop = contexts.context(for: channel.eventLoop)
        // Limits come from the current config: a swap that keeps the socket still changes them.
        var setup = self
        setup.limits = ListenerLimits(loop.snapshot.listener(named: listener.name) ?? listener)
        setup.acceptedAt = .now()
        let sync = channel.pipeline.syncOperations
        // The current snapshot's context (its newest certificates), or the one this listener
        // was bound with when a swap removed it (its open connections drain).
        let tlsContext = loop.snapshot.listener(named: listener.name) == nil
            ? boundTLSContext : loop.snapshot.serverTLSContexts[listener.name]
        // Envoy's reject_incoming_connections: accepted, then closed without a word.
        if loop.overload.contains(.rejectIncomingConnections) {
            loop.stats.count("meshd_downstream_cx_overload_reject_total{listener=\"\(listener.name)\"}")
            return try sync.addHandler(ConnectionRefusal(answer: false))
        }
        switch tracker.admit(channel, listener: listener.name, limit: setup.limits.maxConnections,
                             globalLimit: loop.snapshot.overload.maxDownstreamConnections) {
        case .admitted:
            break
        case .refused(let answer):
            return try sync.addHandler(ConnectionRefusal(answer: answer && tlsContext == nil))
        }
        let current = loop.snapshot.listener(named: listener.name) ?? listener
        if let tcp = current.tcpProxy {
            // Raw bytes: no TLS termination, no codec (validated when the snapshot was built).
            let table = try TCPRouteTable(tcp, clusters: loop.snapshot.clusters, path: "listeners[\(listener.name)]")
            let session = TCPProxySession(downstream: channel, loop: loop, listener: current, table: table)
            return try sync.addHandler(TCPDownstreamHandler(session: session))
        }
        let info = ConnectionInfo(remoteAddress: channel.remoteAddress, localAddress: channel.localAddress)
        // Mesh TLS comes from the current config (like the limits) and the newest workload
        // certificate: a rotation or a PeerAuthentication change applies from the next accept.
        if tlsContext == nil, let mode = current.meshTLS {
            let mesh = WorkloadCertificates.shared.serverContext(alpn: current.tls?.alpn ?? ["h2", "http/1.1"])
            switch (mode, mesh) {
            case (.strict, let mesh?):
                try sync.addHandler(OpenSSLHandler(server: mesh))
                return try sync.addHandler(ProtocolSelector(setup: setup, info: info, tls: true, timers: loop.timers))
            case (.strict, nil):
                // No certificate yet: STRICT has nothing it may accept.
                return try sync.addHandler(ConnectionRefusal(answer: false))
            case (.permissive, let mesh?):
                return try sync.addHandler(MeshTLSSniffer(setup: setup, info: info, server: mesh, timers: loop.timers))
            case (.permissive, nil):
                break  // plaintext only until the certificate arrives
            }
        }
        if let tlsContext { try sync.addHandler(OpenSSLHandler(server: tlsContext)) }
        try sync.addHandler(ProtocolSelector(setup: setup, info: info, tls: tlsContext != nil, timers: loop.timers))
    }

    func installCodec(on channel: Channel, after selector: ProtocolSelector, info: ConnectionInfo, http2: Bool) throws {
        let loop = contexts.context(for: channel.eventLoop)
        let factory = StreamFactory(loop: loop, listenerName: listener.name, fallback: listener)
        let sync = channel.pipeline.syncOperations
        if http2 {
            let codec = HTTP2ServerCodec(factory: factory, connectionInfo: info, settings: limits.http2, timers: loop.timers)
            let name = listener.name
            let stats = loop.stats
            codec.onFrameLimitExceeded = { violation in
                stats.count("meshd_http2_\(violation.statName)_total{listener=\"\(name)\"}")
            }
            try sync.addHandler(codec, position: .after(selector))
            tracker.setDrainer(channel) { codec.startGracefulShutdown() }
        } else {
            let connection = HTTP1ServerConnection(factory: factory, connectionInfo: info, timeouts: limits.timeouts,
                                                   maxHeadBytes: limits.maxRequestHeaderBytes, timers: loop.timers,
                                                   acceptedAt: acceptedAt)
            try sync.addHandler(connection, position: .after(selector))
            tracker.setDrainer(channel) { connection.startDraining() }
        }
    }
}

/// Makes an engine stream for each downstream exchange, with the loop's current snapshot.
final class StreamFactory: DownstreamStreamFactory {
    private let loop: LoopContext
    private let listenerName: String
    private let fallback: Listener

    init(loop: LoopContext, listenerName: String, fallback: Listener) {
        self.loop = loop
        self.listenerName = listenerName
        self.fallback = fallback
    }

    func makeStream(downstream: DownstreamStream) -> DownstreamStreamEvents {
        let snapshot = loop.snapshot
        // A listener removed by a swap keeps serving its open connections with its last config.
        let listener = snapshot.listener(named: listenerName) ?? fallback
        return HTTPStream(downstream: downstream, loop: loop, snapshot: snapshot, listener: listener)
    }
}
