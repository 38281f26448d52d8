import NIOCore

/// Sits in front of the HTTP/1 request decoder and tells the connection whenever bytes
/// arrive. The decoder reports only whole heads, so without this the connection could not
/// see a request start and a slow client would get the idle timeout instead of the
/// header timeout on every request after the first.
package final class HTTP1ReadWatch: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    private weak var connection: HTTP1ServerConnection?

    package init(_ connection: HTTP1ServerConnection) {
        self.connection = connection
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection?.bytesArrived()
        context.fireChannelRead(data)
    }
}
