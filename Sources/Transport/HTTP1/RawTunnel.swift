import NIOCore
import NIOHTTP1
import MeshAPI

/// After an HTTP/1.1 Upgrade (WebSocket) is accepted, the HTTP codec leaves the pipeline
/// and this handler carries raw bytes: inbound to `onBytes`, outbound as given.
/// The bytes still flow through the stream as body chunks, so filters, backpressure and
/// the access log's byte counts work for tunnels too.
package final class RawTunnelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private let onBytes: (ByteBuffer) -> Void

    package init(onBytes: @escaping (ByteBuffer) -> Void) {
        self.onBytes = onBytes
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onBytes(unwrapInboundIn(data))
    }

    /// Removes the HTTP/1 codec handlers around `codec` and puts a tunnel in their place.
    package static func replaceHTTPCodec(in pipeline: ChannelPipeline.SynchronousOperations, codec: ChannelHandler,
                                 httpHandlers: [ChannelHandlerContext?], onBytes: @escaping (ByteBuffer) -> Void) throws {
        try pipeline.addHandler(RawTunnelHandler(onBytes: onBytes), position: .before(codec))
        for case let ctx? in httpHandlers {
            pipeline.removeHandler(context: ctx, promise: nil)
        }
    }
}

/// Whether a request asks for a protocol upgrade that the proxy tunnels (RFC 9110 §7.8).
package func isUpgradeRequest(_ headers: HTTPHeaders) -> Bool {
    guard headers.contains(name: "upgrade") else { return false }
    return headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
}
