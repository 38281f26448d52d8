import NIOCore
import NIOHTTP1
import NIOPosix

/// Calls another service through the local sidecar's outbound listener, the way a bookinfo
/// service would: `Host: <service>`, with the tracing/user headers of the incoming request.
enum DemoAppCalls {
    struct Result: Sendable {
        var status: Int
        var headers: [(String, String)]
        var body: String
    }

    /// Bookinfo's list: every trace header a hop must carry for the next sidecar to continue the trace.
    static let propagated = ["end-user", "cookie", "user-agent", "x-request-id", "traceparent", "tracestate", "b3",
                             "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
                             "x-ot-span-context", "x-cloud-trace-context", "grpc-trace-bin", "sw8"]

    static func call(service: String, path: String, via outbound: (String, Int), incoming: HTTPHeaders,
                     on loop: EventLoop) -> EventLoopFuture<Result> {
        var outgoing = HTTPHeaders()
        outgoing.add(name: "host", value: service)
        outgoing.add(name: "connection", value: "close")
        for name in propagated { for v in incoming[name] { outgoing.add(name: name, value: v) } }
        let headers = outgoing
        let promise = loop.makePromise(of: Result.self)
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(OneShotClient(promise: promise))
                }
            }
            .connect(host: outbound.0, port: outbound.1)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                case .failure(let error):
                    promise.succeed(Result(status: 0, headers: [], body: "connect failed: \(error)"))
                }
            }
        return promise.futureResult
    }
}

private final class OneShotClient: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<DemoAppCalls.Result>
    private var result = DemoAppCalls.Result(status: 0, headers: [], body: "")
    private var done = false

    init(promise: EventLoopPromise<DemoAppCalls.Result>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            result.status = Int(h.status.code)
            result.headers = h.headers.map { ($0.name.lowercased(), $0.value) }
        case .body(let b):
            result.body += String(buffer: b)
        case .end:
            finish(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { result.body = result.body.isEmpty ? "connection closed" : result.body }
        finish(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        result.body = "\(error)"
        finish(context)
    }

    private func finish(_ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        promise.succeed(result)
        context.close(promise: nil)
    }
}
