import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Chooses the codec for a new downstream connection: after TLS by ALPN ("h2" → HTTP/2),
/// in cleartext by the first bytes (the HTTP/2 connection preface → h2c prior knowledge).
final class ProtocolSelector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let setup: ConnectionSetup
    private var buffered: ByteBuffer?
    private var info: ConnectionInfo
    private let tls: Bool
    private var decided = false

    init(setup: ConnectionSetup, info: ConnectionInfo, tls: Bool) {
        self.setup = setup
        self.info = info
        self.tls = tls
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
    let tlsContext: TLSServerContext?
    let tracker: ConnectionTracker

    var timeouts: ConnectionTimeouts {
        ConnectionTimeouts(idle: .milliseconds(Int64(listener.idleTimeoutMs ?? 300_000)),
                           requestHeaders: .milliseconds(Int64(listener.requestHeadersTimeoutMs ?? 10_000)))
    }

    func initialize(_ channel: Channel) throws {
        let sync = channel.pipeline.syncOperations
        let info = ConnectionInfo(remoteAddress: channel.remoteAddress, localAddress: channel.localAddress)
        if let tlsContext { try sync.addHandler(OpenSSLHandler(server: tlsContext)) }
        try sync.addHandler(ProtocolSelector(setup: self, info: info, tls: tlsContext != nil))
        tracker.opened(channel, listener: listener.name)
    }

    func installCodec(on channel: Channel, after selector: ProtocolSelector, info: ConnectionInfo, http2: Bool) throws {
        let loop = contexts.context(for: channel.eventLoop)
        let factory = StreamFactory(loop: loop, listenerName: listener.name, fallback: listener)
        let sync = channel.pipeline.syncOperations
        if http2 {
            var settings = HTTP2ServerSettings()
            settings.maxHeaderListSize = (listener.maxRequestHeadersKb ?? 60) * 1024
            if let resets = listener.http2MaxResetsPerWindow { settings.maxResetsPerWindow = resets }
            let codec = HTTP2ServerCodec(factory: factory, connectionInfo: info, settings: settings)
            try sync.addHandler(codec, position: .after(selector))
            tracker.setDrainer(channel) { codec.startGracefulShutdown() }
        } else {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderListSize = (listener.maxRequestHeadersKb ?? 60) * 1024
            limits.maxHeaderFieldSize = limits.maxHeaderListSize
            let connection = HTTP1ServerConnection(factory: factory, connectionInfo: info, timeouts: timeouts, timers: loop.timers)
            try sync.addHandler(connection, position: .after(selector))
            try sync.configureHTTPServerPipeline(position: .after(selector), withPipeliningAssistance: false,
                                                 withErrorHandling: false, withOutboundHeaderValidation: true,
                                                 withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
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
