#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Transport

/// Whether a proxy is ready to serve: nil when it is, else why not (e.g. a managed proxy
/// still waiting for its first config from the control plane). Draining is checked apart.
public typealias Readiness = @Sendable () -> String?

/// The admin endpoint (Envoy's :15000): the pages of `AdminEndpoints` (readiness, stats,
/// clusters, listeners, config dump, logging, health-check and drain controls, config changes
/// by POST). Off the data path; served by one of the proxy's loops.
/// It has its own socket, connection cap and idle timeout, outside the data listeners'
/// budget, so it stays reachable when they are full.
public final class AdminServer: Sendable {
    let runtime: ProxyRuntime
    let watcher: ConfigWatcher?
    private let channel: Channel
    /// Admin connections open at once; more are closed at accept.
    static let maxConnections = 64
    /// An admin connection with nothing read or written for this long is closed.
    static let idleTimeout = TimeAmount.seconds(60)

    /// What a port of the admin server serves.
    public enum Role: Sendable {
        /// Every admin page (Envoy's :15000).
        case admin
        /// `GET /healthz/ready` alone (Istio's health port, 15021).
        case health
        /// `GET /stats/prometheus` alone (Istio's merged Prometheus port, 15090).
        case prometheus
    }

    /// What the admin pages need of the process beyond the runtime.
    public struct Process: Sendable {
        /// The version `/server_info` reports.
        public var version: String
        /// The options the process was started with (`/server_info`'s command_line_options).
        public var commandLineOptions: [String: String]
        /// POST /quitquitquit: ends the process cleanly (the SIGTERM path: drain, then exit 0).
        public var quit: @Sendable () -> Void

        public init(version: String = ServerVersion.current, commandLineOptions: [String: String] = [:],
                    quit: @escaping @Sendable () -> Void = { kill(getpid(), SIGTERM) }) {
            self.version = version
            self.commandLineOptions = commandLineOptions
            self.quit = quit
        }
    }

    public init(runtime: ProxyRuntime, watcher: ConfigWatcher?, host: String, port: Int,
                readiness: @escaping Readiness = { nil }, role: Role = .admin, process: Process = Process()) throws {
        self.runtime = runtime
        self.watcher = watcher
        let handlerRuntime = runtime
        let open = NIOLockedValueBox(0)
        channel = try ServerBootstrap(group: runtime.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let admitted = open.withLockedValue { n -> Bool in
                        guard n < Self.maxConnections else { return false }
                        n += 1
                        return true
                    }
                    guard admitted else { return try sync.addHandler(ConnectionRefusal(answer: false)) }
                    channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                    try sync.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                    try sync.addHandler(IdleConnectionCloser())
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(NIOHTTPServerRequestAggregator(maxContentLength: 8 << 20))
                    let endpoints = AdminEndpoints(runtime: handlerRuntime, watcher: watcher, readiness: readiness,
                                                   process: process)
                    try sync.addHandler(AdminHandler(endpoints: endpoints, role: role))
                }
            }
            .bind(host: host, port: port).wait()
    }

    public var port: Int? { channel.localAddress?.port }

    public func close() { channel.close(promise: nil) }
}

/// Closes the connection when `IdleStateHandler` says it has been idle.
final class IdleConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { return context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// One admin connection: requests in, the endpoint's answer out, in order.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    let endpoints: AdminEndpoints
    let role: AdminServer.Role

    init(endpoints: AdminEndpoints, role: AdminServer.Role) {
        self.endpoints = endpoints
        self.role = role
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let full = unwrapInboundIn(data)
        let request = AdminRequest(method: full.head.method, uri: full.head.uri, body: full.body.map { String(buffer: $0) })
        let keepAlive = full.head.isKeepAlive
        let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let answer: EventLoopFuture<AdminResponse>
        switch role {
        case .admin:
            answer = endpoints.answer(request, on: context.eventLoop)
        case .health:
            answer = request.method == .GET && request.path == "/healthz/ready"
                ? endpoints.answer(request, on: context.eventLoop)
                : context.eventLoop.makeSucceededFuture(AdminResponse(.notFound, "unknown health path: \(request.path)\n"))
        case .prometheus:
            answer = request.method == .GET && request.path == "/stats/prometheus"
                ? endpoints.answer(request, on: context.eventLoop)
                : context.eventLoop.makeSucceededFuture(AdminResponse(.notFound, "unknown Prometheus path: \(request.path)\n"))
        }
        answer.whenComplete { result in
            let response = (try? result.get()) ?? AdminResponse(.internalServerError, "admin page failed\n")
            handler.value.send(context: ctx.value, response, keepAlive: keepAlive)
        }
    }

    func send(context: ChannelHandlerContext, _ response: AdminResponse, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.utf8.count))
        headers.add(name: "server", value: "meshd")
        headers.add(name: "x-content-type-options", value: "nosniff")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        let after = response.afterSent
        done.assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
            after?()
        }
    }
}
