import NIOCore
import MeshAPI

/// Terminates or originates TLS on a NIO channel: ciphertext on the channel side,
/// plaintext ByteBuffers on the pipeline side. Event-loop only: create it in a channel
/// initializer and add it with `pipeline.syncOperations`.
public final class OpenSSLHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    package enum State {
        case idle, handshaking, active
        /// Our close_notify is on its way; the channel closes when it is written (or times out).
        case closing
        case closed
    }

    package struct BufferedWrite {
        package var data: ByteBuffer
        package var promise: EventLoopPromise<Void>?
    }

    package let connection: OpenSSLConnection
    package let isClient: Bool
    /// How long `close` waits for our close_notify to be written before closing anyway.
    package let shutdownTimeout: TimeAmount
    package var state: State = .idle
    /// Plaintext waiting for the handshake (or a retry); the first `flushedWriteCount` were flushed.
    package var bufferedWrites = CircularBuffer<BufferedWrite>()
    package var flushedWriteCount = 0
    /// After close(mode: .output) no more plaintext may be written.
    package var outputClosed = false
    /// Set (a TCP proxy's connection): the peer's close_notify is its end of input, passed on
    /// as `ChannelEvent.inputClosed` while writing goes on, as after a FIN (TLS 1.3 and
    /// OpenSSL allow writing after the peer's close_notify). Otherwise we answer with ours and
    /// close.
    public var endsInputOnCloseNotify = false
    /// The peer's close_notify was passed on as the end of input.
    package var inputClosed = false
    package var receivedBytes = false
    package var closePromise: EventLoopPromise<Void>?
    package var closeTimeout: Scheduled<Void>?
    package static let readChunkSize = 16 * 1024

    public internal(set) var negotiatedProtocol: String?
    public internal(set) var serverName: String?
    public internal(set) var protocolVersion: String?
    public internal(set) var cipher: String?
    public internal(set) var peerCertificatePresented = false
    /// Client side: the server's certificate must carry one of these URI or DNS SANs
    /// (Envoy's `match_subject_alt_names`, e.g. a SPIFFE ID); empty: no SAN check.
    package var expectedSubjectAltNames: [String] = []
    public var isHandshakeComplete: Bool { protocolVersion != nil }

    public convenience init(server: TLSServerContext) {
        self.init(connection: OpenSSLConnection(ctx: server.ctx, contextOwner: server, isClient: false),
                  isClient: false)
    }

    /// - Parameter serverName: sent as SNI and, if the context verifies peers, checked
    ///   against the server's certificate.
    /// - Parameter subjectAltNames: when not empty, the server must present one of these SANs
    ///   (checked after the chain verifies); the host name check is then not made, as in Envoy.
    /// - Parameter verifyHostName: false for mesh mTLS, where identity is the SPIFFE ID, not a host.
    public convenience init(client: TLSClientContext, serverName: String?, subjectAltNames: [String] = [],
                            verifyHostName: Bool = true) {
        let connection = OpenSSLConnection(ctx: client.ctx, contextOwner: client, isClient: true)
        if let serverName {
            connection.configureServerName(serverName, verify: client.verifyPeer && subjectAltNames.isEmpty && verifyHostName)
        }
        self.init(connection: connection, isClient: true)
        expectedSubjectAltNames = subjectAltNames
    }

    package init(connection: OpenSSLConnection, isClient: Bool, shutdownTimeout: TimeAmount = .seconds(2)) {
        self.connection = connection
        self.isClient = isClient
        self.shutdownTimeout = shutdownTimeout
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startHandshake(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        closeTimeout?.cancel()
        failBufferedWrites(ChannelError.ioOnClosedChannel)
    }

    public func channelActive(context: ChannelHandlerContext) {
        startHandshake(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let wasHandshaking = state == .idle || state == .handshaking
        state = .closed
        closeTimeout?.cancel()
        closeTimeout = nil
        failBufferedWrites(ChannelError.ioOnClosedChannel)
        // A server ignores probes that connect and leave without a byte (health checks).
        if wasHandshaking && (isClient || receivedBytes) {
            context.fireErrorCaught(TLSError("connection closed during the TLS handshake"))
        }
        closePromise?.succeed()
        closePromise = nil
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .closing, .closed:
            return  // we are going away; the peer's data has nowhere to go
        case .idle, .handshaking, .active:
            break
        }
        receivedBytes = true
        connection.feed(buffer)
        switch state {
        case .idle, .handshaking:
            advanceHandshake(context: context)
        case .active:
            readApplicationData(context: context)
        case .closing, .closed:
            break
        }
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state {
        case .closing, .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        case .idle, .handshaking, .active:
            break
        }
        if outputClosed {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        bufferedWrites.append(BufferedWrite(data: unwrapOutboundIn(data), promise: promise))
    }

    public func flush(context: ChannelHandlerContext) {
        flushedWriteCount = bufferedWrites.count
        // Before the handshake completes the flush is remembered and done afterwards.
        if state == .active { writeFlushedPlaintext(context: context) }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch (mode, state) {
        case (.all, .active):
            sendCloseNotifyThenClose(context: context, promise: promise)
        case (.all, .closing):
            addClosePromise(promise)
        case (.all, .idle), (.all, .handshaking):
            // Mid-handshake OpenSSL cannot send close_notify; just drop the connection.
            state = .closed
            failBufferedWrites(ChannelError.ioOnClosedChannel)
            context.close(mode: mode, promise: promise)
        case (.output, .active) where !outputClosed:
            outputClosed = true
            failBufferedWrites(ChannelError.outputClosed, onlyUnflushed: true)
            connection.shutdown()
            writeCiphertext(context: context, flush: true)
            context.close(mode: mode, promise: promise)
        default:
            context.close(mode: mode, promise: promise)
        }
    }
}

/// Bound to one channel's event loop; never shared across threads.
@available(*, unavailable)
extension OpenSSLHandler: Sendable {}
