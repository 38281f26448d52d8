import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Chooses the codec for a new downstream connection: after TLS by ALPN ("h2" → HTTP/2;
/// Istio's TCP names → bytes on a listener that also proxies bytes), in cleartext by the
/// first bytes (`FirstBytes`: the HTTP/2 preface → h2c prior knowledge; on a listener that
/// serves HTTP and bytes, an HTTP/1 request line → HTTP/1, anything else → bytes). Until
/// then the request-header timeout runs from the accept, so a silent client, a stalled TLS
/// handshake or a partial preface cannot hold the connection; on a listener that also
/// proxies bytes a client silent that long is proxied as TCP (Istio's protocol detection
/// timeout), so a server-first protocol still gets through.
final class ProtocolSelector: ChannelInboundHandler, RemovableChannelHandler, TimerTarget {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

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
        guard token == timer, !decided, let context else { return }
        timer = nil
        if setup.carries == .sniffed && !tls { return decide(context: context, .bytes) }
        // Nothing to answer yet (no HTTP spoken): just close.
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let done = event as? TLSHandshakeCompleted {
            info.isTLS = true
            info.alpn = done.negotiatedProtocol
            info.serverName = done.serverName
            info.tls = done.facts
            decide(context: context, setup.carries.afterHandshake(alpn: done.negotiatedProtocol))
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
        if let chosen = FirstBytes.classify(buffered!.readableBytesView, on: setup.carries) {
            decide(context: context, chosen)
        }
    }

    private func decide(context: ChannelHandlerContext, _ chosen: DownstreamProtocol) {
        guard !decided else { return }
        decided = true
        timers.cancel(timer)
        timer = nil
        do {
            try setup.install(chosen, on: context.channel, after: self, info: info)
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
    /// Set per connection by `initialize`: the limits in force at its accept, and when that was,
    /// and what the listener carries.
    private(set) var limits: ListenerLimits
    private(set) var acceptedAt = NIODeadline.uptimeNanoseconds(0)
    private(set) var carries = Carriage.http

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
        setup.carries = Carriage(current)
        let info = ConnectionInfo(remoteAddress: channel.remoteAddress, localAddress: channel.localAddress)
        if setup.carries == .bytes && current.meshTLS == nil {
            // Raw bytes: no TLS termination, no codec (validated when the snapshot was built).
            return try sync.addHandler(TCPDownstreamHandler(session: setup.session(channel, current, info: info)))
        }
        // Mesh TLS comes from the current config (like the limits) and the newest workload
        // certificate: a rotation or a PeerAuthentication change applies from the next accept.
        if tlsContext == nil, let mode = current.meshTLS {
            let alpn = current.tcpProxy != nil ? MeshApplication.bytesOrHTTPServerALPN : current.tls?.alpn ?? ["h2", "http/1.1"]
            let mesh = WorkloadCertificates.shared.serverContext(alpn: alpn)
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
        if setup.carries == .bytes {
            // Plaintext bytes (PERMISSIVE before the certificate arrives).
            return try sync.addHandler(TCPDownstreamHandler(session: setup.session(channel, current, info: info)))
        }
        if let tlsContext { try sync.addHandler(OpenSSLHandler(server: tlsContext)) }
        try sync.addHandler(ProtocolSelector(setup: setup, info: info, tls: tlsContext != nil, timers: loop.timers))
    }

    /// A TCP proxy session for `channel`, routed by the listener's current `tcpProxy`.
    func session(_ channel: Channel, _ current: Listener, info: ConnectionInfo) throws -> TCPProxySession {
        let loop = contexts.context(for: channel.eventLoop)
        // Validated when the snapshot was built.
        let table = try TCPRouteTable(current.tcpProxy ?? TCPProxy(routes: []), clusters: loop.snapshot.clusters,
                                      path: "listeners[\(listener.name)]")
        return TCPProxySession(downstream: channel, loop: loop, listener: current, table: table, connection: info)
    }

    func install(_ chosen: DownstreamProtocol, on channel: Channel, after selector: ProtocolSelector, info: ConnectionInfo) throws {
        let loop = contexts.context(for: channel.eventLoop)
        let sync = channel.pipeline.syncOperations
        let current = loop.snapshot.listener(named: listener.name) ?? listener
        if chosen == .bytes {
            // Behind mesh TLS a client's close_notify is its half-close, passed on like a FIN.
            (try? sync.handler(type: OpenSSLHandler.self))?.endsInputOnCloseNotify = true
            return try sync.addHandler(TCPDownstreamHandler(session: session(channel, current, info: info)), position: .after(selector))
        }
        let factory = StreamFactory(loop: loop, listenerName: listener.name, fallback: listener)
        if chosen == .http2 {
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
        // HTTP on a socket that allows half-closure (the listener also proxies bytes): a
        // client's FIN ends the connection, as on any other HTTP listener. In front of the codec.
        if current.tcpProxy != nil { try sync.addHandler(HalfCloseAsClose(), position: .after(selector)) }
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
