import MeshAPI
import NIOCore
import NIOHTTP1
import NIOPosix
import Transport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens upstream connections on one event loop: TCP, then TLS when the cluster asks for
/// it, then the cluster's HTTP codec.
struct UpstreamConnector {
    let eventLoop: EventLoop
    let timers: LoopTimers
    /// The loop's batch that HTTP/1.1 connections flush their complete requests through.
    let flushes: LoopFlushBatch

    /// Connects; the channel's pipeline ends in the codec that `connection(of:http2:)` finds.
    func connect(cluster: Cluster, endpoint: Endpoint, http2: Bool) -> EventLoopFuture<Channel> {
        let idle = TimeAmount.milliseconds(Int64(cluster.idleTimeoutMs ?? 60_000))
        let plan: UpstreamTLSPlan
        do {
            plan = try UpstreamTLSPlan(cluster: cluster, endpoint: endpoint, http2: http2)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailure("\(error)"))
        }
        let tlsContext = plan.context, sans = plan.subjectAltNames, verifyHost = plan.verifyHostName
        let sni = plan.serverName ?? endpoint.address
        let timers = NIOLoopBound(self.timers, eventLoop: eventLoop)
        let flushes = NIOLoopBound(self.flushes, eventLoop: eventLoop)
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(Int64(cluster.connectTimeoutMs ?? 5_000)))
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(OpenSSLHandler(client: tlsContext, serverName: sni, subjectAltNames: sans, verifyHostName: verifyHost))
                    }
                    if http2 {
                        try sync.addHandler(HTTP2ClientConnection(eventLoop: channel.eventLoop))
                    } else {
                        try sync.addHandler(HTTP1ClientConnection(idleTimeout: idle, timers: timers.value, flushes: flushes.value))
                    }
                }
            }
        if let keepalive = cluster.tcpKeepalive { bootstrap = Self.keepalive(keepalive, on: bootstrap) }
        return bootstrap.connect(host: endpoint.address, port: endpoint.port)
    }

    /// SO_KEEPALIVE, and the probe timings that are set (the kernel's otherwise).
    private static func keepalive(_ k: TCPKeepalive, on bootstrap: ClientBootstrap) -> ClientBootstrap {
        var b = bootstrap.channelOption(.socketOption(.so_keepalive), value: 1)
        #if canImport(Glibc)
        let idle = TCP_KEEPIDLE
        #else
        let idle = TCP_KEEPALIVE
        #endif
        let options: [(Int32, Int?)] = [(idle, k.timeSeconds), (TCP_KEEPINTVL, k.intervalSeconds), (TCP_KEEPCNT, k.probes)]
        for case let (name, value?) in options where value > 0 {
            b = b.channelOption(.tcpOption(NIOBSDSocket.Option(rawValue: name)), value: SocketOptionValue(value))
        }
        return b
    }

    /// The codec of a connected channel; call on the channel's loop.
    static func connection(of channel: Channel, http2: Bool) throws -> UpstreamConnection {
        if http2 { return try channel.pipeline.syncOperations.handler(type: HTTP2ClientConnection.self) }
        return try channel.pipeline.syncOperations.handler(type: HTTP1ClientConnection.self)
    }
}
