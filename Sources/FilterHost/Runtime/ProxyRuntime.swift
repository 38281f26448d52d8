#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Transport

/// A running proxy: listeners, per-loop contexts, the current snapshot and how it is
/// replaced. `apply` validates a new config completely before anything changes.
public final class ProxyRuntime: Sendable {
    public let group: MultiThreadedEventLoopGroup
    let logger: Logger
    public let registry: FilterRegistry
    let tracker: ConnectionTracker
    private let state: NIOLockedValueBox<State>
    /// One config change at a time (the file watcher and the admin endpoint both apply).
    private let applying = NIOLock()
    let contexts: LoopContexts
    let overload: OverloadManager
    /// Read from the first bootstrap only; later configs do not change it.
    let tracer: Tracer?
    private let startTracing: TracingConfig?
    private let startAccessLogEncoding: AccessLogEncoding?
    /// When the proxy started (admin /server_info's uptime).
    public let startTime = Date()

    struct State {
        var snapshot: ProxySnapshot
        var listeners: [String: BoundListener] = [:]
        var lastError: String?
        var lastErrorTime: Date?
        var accepted = 1
        var rejected = 0
        var draining = false
        /// Admin POST /healthcheck/fail (until /healthcheck/ok): health checks answer failed.
        var healthCheckFailed = false
    }

    struct BoundListener {
        let config: Listener
        let channel: Channel
    }

    /// - Parameter maxDownstreamConnections: open downstream connections allowed across all
    ///   listeners; default from the open-file limit (`ConnectionBudget`).
    public init(group: MultiThreadedEventLoopGroup, registry: FilterRegistry, bootstrap: Bootstrap, logger: Logger,
                maxDownstreamConnections: Int? = nil) throws {
        self.group = group
        self.registry = registry
        self.logger = logger
        self.tracker = ConnectionTracker(processLimit: maxDownstreamConnections ?? ConnectionBudget.defaultDownstreamLimit)
        let snapshot = try ProxySnapshot.build(bootstrap, version: 1, registry: registry, loadingTLS: true)
        let loops = group.makeIterator().map { $0 }
        let tracer = bootstrap.tracing.map(Tracer.init(config:))
        self.tracer = tracer
        startTracing = bootstrap.tracing
        startAccessLogEncoding = bootstrap.accessLogEncoding
        let encoding = bootstrap.accessLogEncoding
        contexts = LoopContexts(loops.map {
            LoopContext(eventLoop: $0, snapshot: snapshot, accessLog: AccessLogWriter(eventLoop: $0, encoding: encoding),
                        tracer: tracer)
        })
        let state = NIOLockedValueBox(State(snapshot: snapshot))
        self.state = state
        let tracker = self.tracker
        overload = OverloadManager(loop: loops[0], contexts: contexts, connections: { tracker.activeCount() },
                                   listeners: { state.withLockedValue { $0.listeners.values.map(\.channel) } })
    }

    public var snapshot: ProxySnapshot { state.withLockedValue { $0.snapshot } }

    /// Binds every listener of the initial config. Throws on a bind or TLS error.
    public func start() throws {
        logger.info("downstream connection budget", metadata: ["connections": "\(tracker.processLimit)"])
        let snapshot = self.snapshot
        var bound: [String: BoundListener] = [:]
        for l in snapshot.bootstrap.listeners {
            bound[l.name] = try bind(l, tls: snapshot.serverTLSContexts[l.name])
        }
        state.withLockedValue { $0.listeners = bound }
        overload.configure(snapshot.overload)
    }

    private func bind(_ l: Listener, tls: TLSServerContext?) throws -> BoundListener {
        let setup = ConnectionSetup(listener: l, contexts: contexts, boundTLSContext: tls, tracker: tracker)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // A TCP proxy passes a client's FIN on and keeps reading the reply.
            .childChannelOption(.allowRemoteHalfClosure, value: l.tcpProxy != nil)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try setup.initialize(channel) }
            }
            .bind(host: l.address, port: l.port).wait()
        logger.info("listening", metadata: ["listener": "\(l.name)", "address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return BoundListener(config: l, channel: channel)
    }

    /// The port a listener is bound to (useful with port 0).
    public func boundPort(listener: String) -> Int? {
        state.withLockedValue { $0.listeners[listener]?.channel.localAddress?.port }
    }

    /// Validates `bootstrap` and, if it is good, makes it the current snapshot: new streams
    /// use it at once, streams in flight finish on the old one. Returns the new version.
    /// With `recordRefusal: false` a config that fails is only returned, not logged or counted
    /// (the file watcher tries a file that may still be being written).
    @discardableResult
    public func apply(_ bootstrap: Bootstrap, recordRefusal: Bool = true) -> Result<Int, ConfigError> {
        applying.withLock { applyLocked(bootstrap, recordRefusal: recordRefusal) }
    }

    private func applyLocked(_ bootstrap: Bootstrap, recordRefusal: Bool) -> Result<Int, ConfigError> {
        func refuse(_ e: ConfigError) -> Result<Int, ConfigError> { recordRefusal ? self.refuse(e) : .failure(e) }
        let current = self.snapshot
        if bootstrap == current.bootstrap { return .success(current.version) }
        warnIfStartOnlyChanged(bootstrap)
        let next: ProxySnapshot
        do {
            next = try ProxySnapshot.build(bootstrap, version: current.version + 1, registry: registry, previous: current,
                                         loadingTLS: true)
        } catch let e as ConfigError {
            return refuse(e)
        } catch {
            return refuse(ConfigError(path: "", reason: "\(error)"))
        }
        // Listeners first: a port that cannot be bound refuses the whole config.
        let old = state.withLockedValue { $0.listeners }
        var keep: [String: BoundListener] = [:]
        var fresh: [String: BoundListener] = [:]
        for l in bootstrap.listeners {
            // TLS is not compared: each accept takes the current snapshot's context, so new
            // certificates serve from the next connection without a rebind.
            if let b = old[l.name], b.config.address == l.address, b.config.port == l.port,
               (b.config.tcpProxy == nil) == (l.tcpProxy == nil) {
                keep[l.name] = BoundListener(config: l, channel: b.channel)
                continue
            }
            // A listener that moved frees its old socket only after the new one is up, unless it is the same port.
            if let b = old[l.name], b.config.port == l.port, b.config.address == l.address {
                try? b.channel.close().wait()
            }
            do {
                fresh[l.name] = try bind(l, tls: next.serverTLSContexts[l.name])
            } catch {
                for f in fresh.values { f.channel.close(promise: nil) }
                return refuse(ConfigError(path: "listeners[\(l.name)]", reason: "cannot listen: \(error)"))
            }
        }
        for (name, b) in old where keep[name] == nil {
            b.channel.close(promise: nil)
            tracker.drain(listener: name)
        }
        // Every loop has the new snapshot before the change is reported (and config_dump shows
        // it), so a request sent after that sees it. Apply never runs on an event loop.
        _ = try? contexts.forEach { $0.snapshot = next }.wait()
        state.withLockedValue {
            $0.snapshot = next
            $0.listeners = keep.merging(fresh) { a, _ in a }
            $0.accepted += 1
        }
        // After the listeners are stored, so a new one is paused too while accepting is stopped.
        overload.configure(next.overload)
        logger.info("config applied", metadata: ["version": "\(next.version)"])
        return .success(next.version)
    }

    /// Records a config refused before it reached `apply` (unreadable, invalid YAML).
    public func refuseExternally(_ e: ConfigError) -> Result<Int, ConfigError> { refuse(e) }

    private func refuse(_ e: ConfigError) -> Result<Int, ConfigError> {
        state.withLockedValue {
            $0.lastError = e.description
            $0.lastErrorTime = Date()
            $0.rejected += 1
        }
        logger.error("config refused, keeping the last good one", metadata: ["reason": "\(e.description)"])
        return .failure(e)
    }

    var status: (version: Int, accepted: Int, rejected: Int, lastError: String?) {
        state.withLockedValue { ($0.snapshot.version, $0.accepted, $0.rejected, $0.lastError) }
    }

    /// Stops accepting, asks every connection to finish, and waits up to `timeout`.
    /// Returns true when every connection closed in time.
    public func drain(timeout: TimeAmount) -> Bool {
        let listeners = state.withLockedValue { s -> [BoundListener] in
            s.draining = true
            return Array(s.listeners.values)
        }
        overload.stop()
        for l in listeners { try? l.channel.close().wait() }
        tracker.drain()
        let deadline = NIODeadline.now() + timeout
        while tracker.activeCount() > 0, NIODeadline.now() < deadline {
            usleep(20_000)
        }
        flushAccessLogs()
        for exporter in tracer?.allExporters ?? [] { exporter.shutdown() }
        return tracker.activeCount() == 0
    }

    /// `tracing` and `accessLogEncoding` are read at start only; a later config that sets them
    /// differently is applied without them, and says so.
    private func warnIfStartOnlyChanged(_ bootstrap: Bootstrap) {
        if let tracing = bootstrap.tracing, tracing != startTracing {
            logger.warning("tracing is read at start only; the changed section is ignored until restart")
        }
        if let encoding = bootstrap.accessLogEncoding, encoding != startAccessLogEncoding {
            logger.warning("accessLogEncoding is read at start only; \(encoding.rawValue) is ignored until restart")
        }
    }

    public var isDraining: Bool { state.withLockedValue { $0.draining } }

    public var isHealthCheckFailed: Bool { state.withLockedValue { $0.healthCheckFailed } }

    /// Admin /healthcheck/fail and /healthcheck/ok (Envoy's): a failed proxy reports DRAINING
    /// and its readiness answers 503, so load balancers and probes take it out of rotation.
    public func setHealthCheckFailed(_ failed: Bool) {
        state.withLockedValue { $0.healthCheckFailed = failed }
    }

    /// Admin /drain_listeners: the data listeners stop accepting (their sockets close; a later
    /// config keeps them closed) and the proxy reports DRAINING. Open connections finish what
    /// they have; with `drainConnections` they are also asked to end (HTTP/1 `connection:
    /// close` after the current response, HTTP/2 GOAWAY). Never waits: runs on an event loop.
    public func stopListeners(drainConnections: Bool) {
        let listeners = state.withLockedValue { s -> [BoundListener] in
            s.draining = true
            return Array(s.listeners.values)
        }
        for l in listeners { l.channel.close(promise: nil) }
        if drainConnections { tracker.drain() }
    }

    /// Each bound data listener's name and local address, sorted by name.
    public var listenerAddresses: [(name: String, address: SocketAddress?)] {
        state.withLockedValue { s in
            s.listeners.keys.sorted().map { ($0, s.listeners[$0]!.channel.isActive ? s.listeners[$0]!.channel.localAddress : nil) }
        }
    }

    /// Admin /reset_counters: every loop's counters and the connection counters to zero.
    public func resetCounters() -> EventLoopFuture<Void> {
        tracker.resetCounters()
        return contexts.forEach { $0.stats.resetCounters() }.map { _ in }
    }

    public func flushAccessLogs() {
        _ = try? contexts.forEach { $0.accessLog.flush() }.wait()
    }

    /// Counters from every loop, added together.
    func collectStats() -> EventLoopFuture<LoopStats.Snapshot> {
        contexts.forEach { ctx -> LoopStats.Snapshot in
            var s = ctx.stats.snapshot
            s.gauges["meshd_upstream_cx_active"] = ctx.pools.activeConnectionCount
            for (key, n) in ctx.pools.connectionsByHost { s.hosts[key, default: .init()].connections += n }
            return s
        }.map { [tracer, snapshot] parts in
            var total = parts.reduce(into: LoopStats.Snapshot()) { $0.merge($1) }
            if let exporters = tracer?.allExporters, !exporters.isEmpty {
                let counters = exporters.map(\.counters)
                total.counters["meshd_tracing_spans_exported_total"] = counters.reduce(0) { $0 + $1.exported }
                total.counters["meshd_tracing_spans_dropped_total"] = counters.reduce(0) { $0 + $1.dropped }
            }
            for (cluster, ejected) in OutlierDetectors.shared.ejectedByCluster(snapshot.bootstrap.clusters) {
                total.gauges["meshd_outlier_detection_ejections_active{cluster=\"\(cluster)\"}"] = ejected.count
            }
            return total
        }
    }
}
