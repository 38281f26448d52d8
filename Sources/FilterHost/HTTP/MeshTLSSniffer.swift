import NIOCore
import Transport

/// PERMISSIVE mesh TLS (Istio's default): one inbound port serves mutual TLS and plaintext.
/// The first byte decides, as Envoy's TLS inspector does: 0x16 opens a TLS handshake record,
/// so the connection gets the workload certificate's TLS; anything else stays cleartext.
/// Then the usual protocol selection runs, and this handler leaves the pipeline.
final class MeshTLSSniffer: ChannelInboundHandler, RemovableChannelHandler, TimerTarget {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let tlsHandshakeRecord: UInt8 = 0x16
    private let setup: ConnectionSetup
    private let info: ConnectionInfo
    private let server: TLSServerContext
    private let timers: LoopTimers
    private var timer: LoopTimers.Token?
    private var context: ChannelHandlerContext?

    init(setup: ConnectionSetup, info: ConnectionInfo, server: TLSServerContext, timers: LoopTimers) {
        self.setup = setup
        self.info = info
        self.server = server
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
        guard token == timer else { return }
        timer = nil
        context?.close(promise: nil)  // silent since the accept: nothing to answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        guard let first = bytes.readableBytesView.first else { return }
        let tls = first == Self.tlsHandshakeRecord
        do {
            let sync = context.pipeline.syncOperations
            try sync.addHandler(ProtocolSelector(setup: setup, info: info, tls: tls, timers: timers), position: .after(self))
            if tls { try sync.addHandler(OpenSSLHandler(server: server), position: .after(self)) }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
        sync(context).removeHandler(self, promise: nil)
    }

    private func sync(_ context: ChannelHandlerContext) -> ChannelPipeline.SynchronousOperations {
        context.pipeline.syncOperations
    }
}
