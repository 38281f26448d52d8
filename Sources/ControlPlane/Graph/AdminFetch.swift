import NIOCore
import NIOHTTP1
import NIOPosix

/// One GET to a proxy's admin server, bounded in time and size: the answer's body, or an
/// error. Runs on the loop it is given, so a slow or silent proxy holds no thread.
enum AdminFetch {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func get(_ address: String, path: String, on loop: EventLoop, timeout: TimeAmount,
                    maxBytes: Int = 16 << 20) -> EventLoopFuture<ByteBuffer> {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return loop.makeFailedFuture(Failure(description: "bad admin address '\(address)'"))
        }
        let host = String(address[..<colon])
        let promise = loop.makePromise(of: ByteBuffer.self)
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(Failure(description: "no answer within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(NIOHTTPClientResponseAggregator(maxContentLength: maxBytes))
                    try sync.addHandler(ResponseCollector(promise: promise))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    // Whatever settles the promise first (answer, error, timer) closes the connection.
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                    var headers = HTTPHeaders()
                    headers.add(name: "host", value: address)
                    headers.add(name: "connection", value: "close")
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                case .failure(let error):
                    promise.fail(Failure(description: "connect: \(error)"))
                }
            }
        return promise.futureResult
    }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPClientResponseFull
    private let promise: EventLoopPromise<ByteBuffer>

    init(promise: EventLoopPromise<ByteBuffer>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response = unwrapInboundIn(data)
        guard response.head.status == .ok else {
            return promise.fail(AdminFetch.Failure(description: "status \(response.head.status.code)"))
        }
        promise.succeed(response.body ?? ByteBuffer())
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(AdminFetch.Failure(description: "connection closed before the answer"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(AdminFetch.Failure(description: "\(error)"))
        context.close(promise: nil)
    }
}
