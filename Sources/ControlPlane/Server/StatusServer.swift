#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

/// The control plane's monitoring endpoint (Istio's 15014): readiness, every proxy's sync
/// state, the config status (last good version, last refusal) and Prometheus metrics.
public final class StatusServer: Sendable {
    public typealias Page = @Sendable () -> (status: Int, contentType: String, body: String)
    private let channel: Channel

    public init(group: EventLoopGroup, host: String, port: Int, pages: [String: Page]) throws {
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(NIOHTTPServerRequestAggregator(maxContentLength: 1 << 20))
                    try sync.addHandler(StatusHandler(pages: pages))
                }
            }
            .bind(host: host, port: port).wait()
    }

    public var port: Int? { channel.localAddress?.port }
    public func close() { channel.close(promise: nil) }
}

private final class StatusHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    let pages: [String: StatusServer.Page]
    init(pages: [String: StatusServer.Page]) { self.pages = pages }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let req = unwrapInboundIn(data)
        let path = String(req.head.uri.split(separator: "?").first ?? "")
        let (status, type, body) = pages[path]?() ?? (404, "text/plain", "unknown path \(path)\n")
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: type)
        headers.add(name: "content-length", value: String(body.utf8.count))
        if !req.head.isKeepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !req.head.isKeepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}
