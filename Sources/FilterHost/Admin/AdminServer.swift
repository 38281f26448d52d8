import Foundation
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

/// The admin endpoint (Envoy's :15000): readiness, Prometheus stats, config dump, and
/// config changes by POST. Off the data path; served by one of the proxy's loops.
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

    public init(runtime: ProxyRuntime, watcher: ConfigWatcher?, host: String, port: Int,
                readiness: @escaping Readiness = { nil }, role: Role = .admin) throws {
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
                    try sync.addHandler(AdminHandler(runtime: handlerRuntime, watcher: watcher, readiness: readiness,
                                                      role: role))
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

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    let runtime: ProxyRuntime
    let watcher: ConfigWatcher?
    let readiness: Readiness
    let role: AdminServer.Role

    init(runtime: ProxyRuntime, watcher: ConfigWatcher?, readiness: @escaping Readiness, role: AdminServer.Role) {
        self.runtime = runtime
        self.watcher = watcher
        self.readiness = readiness
        self.role = role
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let req = unwrapInboundIn(data)
        let path = String(req.head.uri.split(separator: "?").first ?? "")
        let keepAlive = req.head.isKeepAlive
        let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        func reply(_ status: HTTPResponseStatus, _ body: String, type: String = "text/plain") {
            handler.value.send(context: ctx.value, status, body, type: type, keepAlive: keepAlive)
        }
        switch role {
        case .admin: break
        case .health:
            guard req.head.method == .GET, path == "/healthz/ready" else { return reply(.notFound, "unknown health path: \(path)\n") }
        case .prometheus:
            guard req.head.method == .GET, path == "/stats/prometheus" else {
                return reply(.notFound, "unknown Prometheus path: \(path)\n")
            }
        }
        switch (req.head.method, path) {
        case (.GET, "/ready"), (.GET, "/healthz/ready"):
            if runtime.isDraining {
                reply(.serviceUnavailable, "DRAINING\n")
            } else if let waiting = readiness() {
                reply(.serviceUnavailable, "INITIALIZING: \(waiting)\n")
            } else {
                reply(.ok, "LIVE\n")
            }
        case (.GET, "/stats/prometheus"), (.GET, "/stats"):
            let runtime = self.runtime
            runtime.collectStats().hop(to: context.eventLoop).whenComplete { result in
                let text = (try? result.get()).map { AdminPages.prometheus($0, runtime: runtime) } ?? ""
                handler.value.send(context: ctx.value, .ok, text, type: "text/plain; version=0.0.4", keepAlive: keepAlive)
            }
        case (.GET, "/overload"):
            let runtime = self.runtime
            runtime.collectStats().hop(to: context.eventLoop).whenComplete { result in
                let text = OverloadPage.json(runtime.overload.current, stats: (try? result.get()) ?? .init())
                handler.value.send(context: ctx.value, .ok, text, type: "application/json", keepAlive: keepAlive)
            }
        case (.GET, "/clusters"):
            reply(.ok, AdminPages.clusters(runtime.snapshot.bootstrap.clusters), type: "text/plain")
        case (.GET, "/config_dump"):
            reply(.ok, AdminPages.configDump(runtime), type: "application/json")
        case (.GET, "/certs"):
            reply(.ok, AdminPages.certificates(WorkloadCertificates.shared.current), type: "application/json")
        case (.POST, "/reload"):
            guard let watcher else { return reply(.badRequest, "no config file to reload\n") }
            applyOffLoop(context.eventLoop, ctx, handler, keepAlive) { watcher.reload(force: true) }
        case (.POST, "/config"):
            let text = req.body.map { String(buffer: $0) } ?? ""
            let runtime = self.runtime
            applyOffLoop(context.eventLoop, ctx, handler, keepAlive) {
                do { return runtime.apply(try BootstrapLoader.parse(text, file: "POST /config")) }
                catch let e as ConfigError { return runtime.refuseExternally(e) }
                catch { return runtime.refuseExternally(ConfigError(path: "", reason: "\(error)")) }
            }
        default:
            reply(.notFound, "unknown admin path: \(path)\n")
        }
    }

    /// Builds and applies a config on a background queue (compiling plugins, binding
    /// listeners and waiting for them must not stall this event loop), then answers here.
    private func applyOffLoop(_ loop: EventLoop, _ ctx: NIOLoopBound<ChannelHandlerContext>,
                              _ handler: NIOLoopBound<AdminHandler>, _ keepAlive: Bool,
                              _ apply: @escaping @Sendable () -> Result<Int, ConfigError>?) {
        DispatchQueue.global().async {
            let result = apply()
            loop.execute {
                handler.value.send(context: ctx.value, AdminPages.status(of: result), AdminPages.describe(result),
                                   type: "text/plain", keepAlive: keepAlive)
            }
        }
    }

    func send(context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String, type: String, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: type)
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "server", value: "meshd")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}

enum AdminPages {
    static func status(of result: Result<Int, ConfigError>?) -> HTTPResponseStatus {
        switch result {
        case .failure: return .badRequest
        default: return .ok
        }
    }

    static func describe(_ result: Result<Int, ConfigError>?) -> String {
        switch result {
        case .success(let v): return "applied version \(v)\n"
        case .failure(let e): return "refused: \(e.description)\n"
        case nil: return "unchanged\n"
        }
    }

    /// Envoy's /clusters text: `cluster::host::health_flags::healthy`, or
    /// `/failed_outlier_check` for an endpoint ejected by outlier detection.
    static func clusters(_ clusters: [Cluster]) -> String {
        let ejected = OutlierDetectors.shared.ejectedByCluster(clusters)
        var out = ""
        for c in clusters {
            for e in c.endpoints {
                let host = OutlierDetectors.host(e)
                let flags = ejected[c.name]?.contains(host) == true ? "/failed_outlier_check" : "healthy"
                out += "\(c.name)::\(host)::health_flags::\(flags)\n"
            }
        }
        return out
    }

    static func configDump(_ runtime: ProxyRuntime) -> String {
        struct Dump: Encodable {
            let version: Int
            let acceptedUpdates: Int
            let rejectedUpdates: Int
            let lastRejection: String?
            let config: Bootstrap
        }
        let s = runtime.status
        let dump = Dump(version: s.version, acceptedUpdates: s.accepted, rejectedUpdates: s.rejected,
                        lastRejection: s.lastError, config: runtime.snapshot.bootstrap.redactingPrivateKeys)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? String(decoding: encoder.encode(dump), as: UTF8.self)) ?? "{}"
    }

    static func prometheus(_ stats: LoopStats.Snapshot, runtime: ProxyRuntime) -> String {
        var counters = stats.counters
        var gauges = stats.gauges
        for (l, n) in runtime.tracker.totalByListener { counters["meshd_downstream_cx_total{listener=\"\(l)\"}"] = n }
        for (l, n) in runtime.tracker.activeByListener { gauges["meshd_downstream_cx_active{listener=\"\(l)\"}"] = n }
        for (l, n) in runtime.tracker.overflowByListener { counters["meshd_downstream_cx_overflow_total{listener=\"\(l)\"}"] = n }
        gauges["meshd_downstream_cx_budget"] = runtime.tracker.processLimit
        let s = runtime.status
        gauges["meshd_config_version"] = s.version
        for e in runtime.registry.extensions { gauges.merge(e.ext.gauges()) { a, _ in a } }
        let overload = runtime.overload.metrics()
        gauges.merge(overload.gauges) { a, _ in a }
        counters.merge(overload.counters) { a, _ in a }
        counters["meshd_config_updates_accepted_total"] = s.accepted
        counters["meshd_config_updates_rejected_total"] = s.rejected
        return PrometheusText.render(counters: counters, gauges: gauges, histograms: stats.histograms)
    }
}
