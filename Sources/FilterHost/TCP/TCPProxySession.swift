#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore
import NIOPosix
import Transport

/// One proxied TCP connection: Envoy's `tcp_proxy`. Reads the ClientHello first when a route
/// matches on SNI, picks a cluster and an endpoint, connects (on the same loop), then copies
/// bytes both ways. A side that ends its writes (FIN) has that end passed on to the other
/// side after everything it sent was written, so half-closed connections keep working; the
/// connection ends when both directions have ended, either side closes, or it idles.
final class TCPProxySession: TimerTarget {
    enum State {
        case idle
        case inspecting
        case connecting
        case proxying(Channel)
        case closed
    }

    private let downstream: Channel
    private let loop: LoopContext
    private let listener: Listener
    private let table: TCPRouteTable
    /// The downstream's addresses and, behind mesh TLS, its handshake (the peer's identity).
    private let connection: ConnectionInfo
    private var state = State.idle
    /// Bytes read before the upstream is connected (the ClientHello among them).
    private var pending: ByteBuffer?
    private var downstreamEnded = false
    private var upstreamEnded = false
    private var bytesReceived = 0
    private var bytesSent = 0
    private var flags: [String] = []
    private var upstreamHost: String?
    private var cluster: String?
    private var routeName: String?
    private var serverName: String?
    private let start = NIODeadline.now()
    private let startWallTime = Date().timeIntervalSince1970
    private var lastActivity = NIODeadline.now()
    private var idleTimer: LoopTimers.Token?
    private var inspectTimer: LoopTimers.Token?
    /// The listener's network filters (Istio's TCP stats), from the snapshot at accept.
    private var observers: [TCPConnectionObserver] = []
    private var reportedOpen = false
    /// Why a network filter closed the connection (Envoy's connection termination details).
    private var terminationDetails: String?

    static let defaultIdleTimeoutMs = 3_600_000
    static let defaultInspectTimeoutMs = 15_000
    static let defaultConnectTimeoutMs = 10_000

    init(downstream: Channel, loop: LoopContext, listener: Listener, table: TCPRouteTable, connection: ConnectionInfo? = nil) {
        self.downstream = downstream
        self.loop = loop
        self.listener = listener
        self.table = table
        self.connection = connection ?? ConnectionInfo(remoteAddress: downstream.remoteAddress, localAddress: downstream.localAddress)
    }

    private var stats: String { "{listener=\"\(listener.name)\"}" }

    // MARK: downstream events

    func downstreamActive() {
        guard case .idle = state else { return }
        state = .inspecting
        loop.stats.count("meshd_tcp_downstream_cx_total\(stats)")
        observers = (loop.snapshot.networkFilters[listener.name] ?? []).map { $0.makeObserver(stats: loop.stats) }
        let idle = listener.tcpProxy?.idleTimeoutMs ?? Self.defaultIdleTimeoutMs
        if idle > 0 { idleTimer = loop.timers.arm(after: .milliseconds(Int64(idle)), self) }
        if table.needsServerName {
            let wait = listener.tcpProxy?.inspectTimeoutMs ?? Self.defaultInspectTimeoutMs
            inspectTimer = loop.timers.arm(after: .milliseconds(Int64(wait)), self)
        } else {
            choose()
        }
    }

    func downstreamRead(_ bytes: ByteBuffer) {
        bytesReceived += bytes.readableBytes
        lastActivity = .now()
        switch state {
        case .inspecting:
            pending.setOrWriteImmutableBuffer(bytes)
            switch ClientHelloReader.read(pending!.readableBytesView) {
            case .needMore:
                if pending!.readableBytes > ClientHelloReader.maxClientHelloBytes { choose() }
            case .notTLS:
                choose()
            case .clientHello(let name):
                serverName = name
                choose()
            }
        case .connecting:
            pending.setOrWriteImmutableBuffer(bytes)
        case .proxying(let upstream):
            upstream.writeAndFlush(bytes, promise: nil)
            if !upstream.isWritable { setAutoRead(downstream, false) }
        case .idle, .closed:
            break
        }
    }

    func downstreamInputEnded() {
        // Behind TLS both the peer's close_notify and its FIN say so.
        guard !downstreamEnded else { return }
        downstreamEnded = true
        switch state {
        case .inspecting: choose()
        case .proxying(let upstream): endOutput(of: upstream, otherEnded: upstreamEnded)
        case .idle, .connecting, .closed: break
        }
    }

    func downstreamWritable() {
        if case .proxying(let upstream) = state, downstream.isWritable { setAutoRead(upstream, true) }
    }

    func downstreamClosed() { finish() }

    // MARK: upstream events

    func upstreamRead(_ bytes: ByteBuffer) {
        guard case .proxying(let upstream) = state else { return }
        bytesSent += bytes.readableBytes
        lastActivity = .now()
        downstream.writeAndFlush(bytes, promise: nil)
        if !downstream.isWritable { setAutoRead(upstream, false) }
    }

    func upstreamInputEnded() {
        guard !upstreamEnded else { return }
        upstreamEnded = true
        endOutput(of: downstream, otherEnded: downstreamEnded)
    }

    func upstreamWritable(_ upstream: Channel) {
        if upstream.isWritable { setAutoRead(downstream, true) }
    }

    func upstreamClosed() {
        guard case .proxying = state else { return }
        // Whatever the upstream sent is written before the downstream is closed.
        downstream.writeAndFlush(ByteBuffer()).assumeIsolated().whenComplete { [self] _ in finish() }
    }

    // MARK: timers

    func timerFired(_ token: LoopTimers.Token) {
        if token == inspectTimer {
            inspectTimer = nil
            if case .inspecting = state { choose() }
        } else if token == idleTimer {
            idleTimer = nil
            if case .closed = state { return }
            // Bytes reset no timer (that would cost a timer per read); the deadline is checked here.
            let idle = TimeAmount.milliseconds(Int64(listener.tcpProxy?.idleTimeoutMs ?? Self.defaultIdleTimeoutMs))
            if NIODeadline.now() - lastActivity >= idle {
                loop.stats.count("meshd_tcp_idle_timeout_total\(stats)")
                finish()
            } else {
                idleTimer = loop.timers.arm(after: idle, from: lastActivity, self)
            }
        }
    }

    // MARK: steps

    /// Picks the cluster and endpoint and starts connecting.
    private func choose() {
        guard case .inspecting = state else { return }
        loop.timers.cancel(inspectTimer)
        inspectTimer = nil
        state = .connecting
        guard admitted() else { return finish() }
        guard let choice = table.choose(serverName: serverName, source: downstream.remoteAddress,
                                        destination: downstream.localAddress) else {
            flags.append("NR")
            loop.stats.count("meshd_tcp_no_route_total\(stats)")
            return finish()
        }
        let name = choice.cluster
        self.cluster = name
        routeName = choice.route
        guard let cluster = loop.snapshot.clusters[name], let endpoint = endpoint(of: cluster) else {
            flags.append("UH")
            loop.stats.count("meshd_tcp_upstream_cx_none_healthy_total{cluster=\"\(name)\"}")
            return finish()
        }
        upstreamHost = "\(endpoint.address):\(endpoint.port)"
        loop.stats.count("meshd_tcp_upstream_cx_total{cluster=\"\(name)\"}")
        // The cluster's TLS, or auto mTLS to a mesh sidecar with Istio's TCP ALPN (which its
        // inbound listener reads to proxy bytes rather than HTTP).
        let plan: UpstreamTLSPlan
        do {
            plan = try UpstreamTLSPlan(cluster: cluster, endpoint: endpoint, application: .bytes)
        } catch {
            flags.append("UF")
            return finish()
        }
        let tlsContext = plan.context, sans = plan.subjectAltNames, verifyHost = plan.verifyHostName
        let sni = plan.serverName ?? endpoint.address
        let bound = NIOLoopBound(self, eventLoop: downstream.eventLoop)
        ClientBootstrap(group: downstream.eventLoop)
            .connectTimeout(.milliseconds(Int64(cluster.connectTimeoutMs ?? Self.defaultConnectTimeoutMs)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        let tls = OpenSSLHandler(client: tlsContext, serverName: sni, subjectAltNames: sans, verifyHostName: verifyHost)
                        tls.endsInputOnCloseNotify = true  // the server's half-close, passed on like a FIN
                        try sync.addHandler(tls)
                    }
                    try sync.addHandler(TCPUpstreamHandler(session: bound.value))
                }
            }
            .connect(host: endpoint.address, port: endpoint.port)
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let upstream): connected(upstream)
                case .failure:
                    flags.append("UF")
                    loop.stats.count("meshd_tcp_upstream_cx_connect_fail_total{cluster=\"\(name)\"}")
                    finish()
                }
            }
    }

    /// An endpoint at random; for an original-destination cluster (Istio's PassthroughCluster)
    /// the host the ClientHello names, on the listener's port: with no capture, the SNI is the
    /// only original destination a connection has.
    private func endpoint(of cluster: Cluster) -> Endpoint? {
        guard cluster.originalDestination == true else { return cluster.endpoints.randomElement() }
        return serverName.map { Endpoint(address: $0, port: listener.port) }
    }

    /// Envoy's network filters before `tcp_proxy`: the first rejection closes the connection
    /// before any upstream is picked.
    private func admitted() -> Bool {
        let facts = self.facts
        for o in observers {
            if case .reject(let details) = o.admit(facts) {
                terminationDetails = details
                return false
            }
        }
        return true
    }

    private func connected(_ upstream: Channel) {
        guard case .connecting = state else {
            upstream.close(promise: nil)
            return
        }
        state = .proxying(upstream)
        reportOpen()
        if let pending, pending.readableBytes > 0 { upstream.writeAndFlush(pending, promise: nil) }
        pending = nil
        if downstreamEnded { endOutput(of: upstream, otherEnded: upstreamEnded) }
    }

    /// Passes a FIN on once what was written before it is out; both ended: done.
    private func endOutput(of channel: Channel, otherEnded: Bool) {
        channel.writeAndFlush(ByteBuffer()).assumeIsolated().whenComplete { [self] _ in
            if otherEnded || (downstreamEnded && upstreamEnded) {
                finish()
            } else {
                channel.close(mode: .output, promise: nil)
            }
        }
    }

    private func setAutoRead(_ channel: Channel, _ on: Bool) {
        try? channel.syncOptions?.setOption(.autoRead, value: on)
    }

    private func finish() {
        if case .closed = state { return }
        let upstream: Channel? = if case .proxying(let u) = state { u } else { nil }
        state = .closed
        pending = nil
        loop.timers.cancel(idleTimer)
        loop.timers.cancel(inspectTimer)
        idleTimer = nil
        inspectTimer = nil
        upstream?.close(promise: nil)
        downstream.close(promise: nil)
        loop.stats.count("meshd_tcp_downstream_cx_rx_bytes_total\(stats)", bytesReceived)
        loop.stats.count("meshd_tcp_downstream_cx_tx_bytes_total\(stats)", bytesSent)
        reportOpen()
        let facts = self.facts
        for o in observers { o.closed(facts, bytesReceived: bytesReceived, bytesSent: bytesSent) }
        if listener.accessLog ?? true { loop.accessLog.record(accessLogEntry(), telemetry: loop.snapshot.telemetry) }
    }

    private var facts: TCPConnectionFacts {
        var connection = self.connection
        if let serverName { connection.serverName = serverName }
        return TCPConnectionFacts(listener: listener.name, cluster: cluster, serverName: serverName,
                                  responseFlags: flags.isEmpty ? "-" : flags.joined(separator: ","), connection: connection)
    }

    /// As Istio: a connection counts as opened once it reached its upstream, or when it ends
    /// without having done so (its flags then say why).
    private func reportOpen() {
        guard !reportedOpen else { return }
        reportedOpen = true
        let facts = self.facts
        for o in observers { o.opened(facts) }
    }

    /// Istio's access-log fields as they read for a TCP connection: no method, path or status.
    private func accessLogEntry() -> AccessLogEntry {
        var entry = AccessLogEntry(tcpStart: startWallTime, flags: flags.isEmpty ? "-" : flags.joined(separator: ","),
                       bytesReceived: bytesReceived, bytesSent: bytesSent,
                       durationMs: (NIODeadline.now() - start).nanoseconds / 1_000_000,
                       upstreamHost: upstreamHost, upstreamCluster: cluster,
                       downstreamLocal: downstream.localAddress, downstreamRemote: downstream.remoteAddress,
                       serverName: serverName, routeName: routeName)
        entry.connectionTerminationDetails = terminationDetails
        return entry
    }
}

extension AccessLogEntry {
    /// A TCP proxy connection's entry: `"- - -" 0` where HTTP has method, path, protocol, status.
    init(tcpStart: Double, flags: String, bytesReceived: Int, bytesSent: Int, durationMs: Int64, upstreamHost: String?,
         upstreamCluster: String?, downstreamLocal: SocketAddress?, downstreamRemote: SocketAddress?, serverName: String?,
         routeName: String?) {
        startTime = Self.timestamp(tcpStart)
        method = "-"
        path = "-"
        protocolName = "-"
        responseCode = 0
        responseFlags = flags
        responseCodeDetails = nil
        self.bytesReceived = bytesReceived
        self.bytesSent = bytesSent
        self.durationMs = durationMs
        upstreamServiceTime = nil
        forwardedFor = nil
        userAgent = nil
        requestID = nil
        authority = "-"
        self.upstreamHost = upstreamHost
        self.upstreamCluster = upstreamCluster
        downstreamLocalAddress = Self.hostPort(downstreamLocal)
        downstreamRemoteAddress = Self.hostPort(downstreamRemote)
        requestedServerName = serverName
        self.routeName = routeName
    }
}

/// The downstream end of a TCP proxy listener's connection.
final class TCPDownstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let session: TCPProxySession

    init(session: TCPProxySession) { self.session = session }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { session.downstreamActive() }
    }

    func channelActive(context: ChannelHandlerContext) { session.downstreamActive() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { session.downstreamRead(unwrapInboundIn(data)) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { session.downstreamInputEnded() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) { session.downstreamWritable() }

    func channelInactive(context: ChannelHandlerContext) { session.downstreamClosed() }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// The upstream end: the connection to the chosen endpoint.
final class TCPUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let session: TCPProxySession

    init(session: TCPProxySession) { self.session = session }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { session.upstreamRead(unwrapInboundIn(data)) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { session.upstreamInputEnded() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) { session.upstreamWritable(context.channel) }

    func channelInactive(context: ChannelHandlerContext) { session.upstreamClosed() }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
