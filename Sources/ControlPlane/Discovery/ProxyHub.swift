import Dispatch
import LuaRuntime
import Transport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// Every proxy connected to the discovery server: what it was sent, what it accepted
/// (ACK) or refused (NACK, with its reason). Pushes send only resources that changed.
///
/// Configs are computed on one serial queue, never on the connections' event loops: a
/// proxy's first push when it connects, and `pushAll` (requests for it that arrive while one
/// is waiting to start are merged into it). Resources shared by many proxies are serialized
/// once (`SharedResources`) and the same bytes are sent to each of them.
public final class ProxyHub: Sendable {
    public enum SyncStatus: String, Sendable, Codable { case synced = "SYNCED", stale = "STALE", nack = "NACK" }

    public struct ProxyStatus: Sendable, Codable {
        public let id: String
        public let kind: String
        public let name: String
        public let namespace: String
        public let address: String
        public let adminAddress: String
        public let sentVersion: String
        public let ackedVersion: String
        public let status: SyncStatus
        public let nackReason: String?
        public let connectedAt: Date
        /// Warnings of the config last sent (fields meshd does not enforce, in resources that
        /// make up this proxy's config), as `meshd validate` prints them.
        public let warnings: [String]
        /// The Lua plugins of the config the proxy acknowledged last (what it runs).
        public let plugins: [String]
        /// The proxy's meshd version ("" from a proxy that does not say).
        public let proxyVersion: String
        /// Per resource type, what was sent and what the proxy acknowledged (as istioctl's
        /// CDS, LDS, EDS, RDS and ECDS columns).
        public let resources: [TypeSync]
    }

    /// One resource type of one proxy: content hashes of what was sent and acknowledged.
    public struct TypeSync: Sendable, Codable, Equatable {
        /// istioctl's column: CDS, LDS, EDS, RDS or ECDS.
        public let type: String
        public let sent: String
        public let acked: String
        /// SYNCED, NOT SENT, STALE, STALE (Never Acknowledged), or NACK (the proxy refused the
        /// push that changed this type).
        public let status: String

        /// meshd's resource types by istioctl's names. Endpoints travel inside clusters (no
        /// separate EDS), so EDS follows the clusters' state; Lua plugins are meshd's extension
        /// configs (ECDS).
        public static let columns: [(column: String, type: String)] =
            [("CDS", "cluster"), ("LDS", "listener"), ("EDS", "cluster"), ("RDS", "route"), ("ECDS", "plugin")]

        static func of(sent: ProxyResources?, acked: ProxyResources?, nacked: Bool) -> [TypeSync] {
            columns.map { column, type in
                let sentVersion = sent?.typeVersions[type] ?? "", ackedVersion = acked?.typeVersions[type] ?? ""
                let status = if sentVersion.isEmpty && ackedVersion.isEmpty { "NOT SENT" }
                    else if sentVersion == ackedVersion { "SYNCED" }
                    else if nacked { "NACK" }
                    else if acked == nil { "STALE (Never Acknowledged)" }
                    else { "STALE" }
                return TypeSync(type: column, sent: sentVersion, acked: ackedVersion, status: status)
            }
        }
    }

    /// Makes a proxy's config from its identity; nil when the control plane has no good config yet.
    public typealias ConfigSource = @Sendable (Meshd_Discovery_V1_Node) -> ProxyResources?

    final class Subscriber: @unchecked Sendable {
        // Only touched under the hub's lock, except `call`, which is used on `eventLoop` only.
        let id: String
        let node: Meshd_Discovery_V1_Node
        let eventLoop: EventLoop
        let call: NIOLoopBound<DiscoveryServerCall>
        var sent = ProxyResources(shared: .empty, own: [:])
        var sentVersion = ""
        var ackedVersion = ""
        /// What the proxy last acknowledged; nil before its first ACK (or when it reconnected
        /// holding a config this control plane did not send).
        var acked: ProxyResources?
        var nonce = 0
        var nackReason: String?
        var needsFull = true
        /// The plugins of the config last acknowledged.
        var ackedPlugins: [String] = []
        /// When the change that the config in flight (sent, not acknowledged yet) answers was
        /// taken up: its acknowledgment ends a convergence.
        var convergingSince: DispatchTime?
        /// Reconnected with a config while the hub holds such proxies: sent nothing yet.
        var held = false
        let connectedAt = Date()

        init(id: String, node: Meshd_Discovery_V1_Node, call: DiscoveryServerCall) {
            self.id = id
            self.node = node
            self.eventLoop = call.eventLoop
            self.call = NIOLoopBound(call, eventLoop: call.eventLoop)
        }
    }

    private let subscribers = NIOLockedValueBox<[ObjectIdentifier: Subscriber]>([:])
    /// Whether reconnecting proxies are held; taken inside the `subscribers` lock only.
    private let holding = NIOLockedValueBox(false)
    /// The two functions, in a struct: a lock box holding a function type directly re-wraps it
    /// in a pair of reabstraction thunks on every `withLockedValue` (the closure's `inout`
    /// parameter is written back), so the call chain grew by two frames per push.
    private struct Handlers {
        var source: ConfigSource
        var membership: MembershipHandler
    }
    private let handlers: NIOLockedValueBox<Handlers>
    private let logger: Logger
    public typealias MembershipHandler = @Sendable (Meshd_Discovery_V1_Node, Bool) -> Void
    private let work = DispatchQueue(label: "meshd.discovery.push")
    /// A `pushAll` waiting to start, with the earliest change it answers.
    private let pushAllPending = NIOLockedValueBox<DispatchTime?>(nil)
    private let metricsBox = NIOLockedValueBox(PushMetrics())
    /// Pushes scheduled on `work` and not finished, and how many were ever scheduled.
    private let pushWork = NIOLockedValueBox((pending: 0, scheduled: 0))
    private let firstPush: FirstPush

    /// When a proxy that just connected gets its first config.
    public enum FirstPush: Sendable {
        /// At once, from the source as it is.
        case immediately
        /// With the next `pushAll`, which the membership handler arranges (the control plane's
        /// runtime does, batching joins): the first config then counts the proxy itself and
        /// every proxy that joined with it, and no follow-up push is needed for them.
        case withNextPushAll
    }

    public init(logger: Logger, source: @escaping ConfigSource, firstPush: FirstPush = .immediately,
                onMembershipChange: @escaping MembershipHandler = { _, _ in }) {
        self.logger = logger
        self.handlers = NIOLockedValueBox(Handlers(source: source, membership: onMembershipChange))
        self.firstPush = firstPush
    }

    public func setMembershipHandler(_ handler: @escaping MembershipHandler) {
        handlers.withLockedValue { $0.membership = handler }
    }

    private func onMembershipChange(_ node: Meshd_Discovery_V1_Node, _ joined: Bool) {
        handlers.withLockedValue { $0.membership }(node, joined)
    }

    // MARK: calls from discovery streams (on their loops)

    func received(_ request: Meshd_Discovery_V1_DiscoveryRequest, on call: DiscoveryServerCall) {
        let key = ObjectIdentifier(call)
        let (subscriber, isNew) = subscribers.withLockedValue { subs -> (Subscriber, Bool) in
            if let s = subs[key] { return (s, false) }
            let node = request.node
            let id = node.id.isEmpty ? "\(node.kind)~\(node.name).\(node.namespace)" : node.id
            let s = Subscriber(id: id, node: node, call: call)
            if !request.versionInfo.isEmpty, holding.withLockedValue({ $0 }) {
                s.held = true
                s.ackedVersion = request.versionInfo
            }
            subs[key] = s
            return (s, true)
        }
        if isNew {
            logger.info("proxy connected", metadata: ["proxy": "\(subscriber.id)", "version": "\(request.versionInfo)",
                                                      "held": "\(subscriber.held)"])
            onMembershipChange(subscriber.node, true)
            let connected = DispatchTime.now()
            if firstPush == .immediately { onWork { self.push(to: subscriber, changedAt: connected) } }
            return
        }
        subscribers.withLockedValue { _ in
            guard !request.responseNonce.isEmpty, request.responseNonce == String(subscriber.nonce) else { return }
            if request.hasErrorDetail {
                subscriber.nackReason = request.errorDetail.message
                subscriber.needsFull = true
                subscriber.convergingSince = nil
                logger.warning("proxy refused config (NACK)", metadata: ["proxy": "\(subscriber.id)", "reason": "\(request.errorDetail.message)"])
            } else {
                subscriber.ackedVersion = request.versionInfo
                if request.versionInfo == subscriber.sentVersion { subscriber.acked = subscriber.sent }
                subscriber.nackReason = nil
                subscriber.ackedPlugins = (Array(subscriber.sent.own.keys) + subscriber.sent.shared.entries.keys)
                    .filter { $0.hasPrefix("plugin/") }
                    .map { String($0.dropFirst("plugin/".count)) }.sorted()
                if let since = subscriber.convergingSince {
                    subscriber.convergingSince = nil
                    metricsBox.withLockedValue { $0.recordConvergence(since: since) }
                }
            }
        }
    }

    func closed(_ call: DiscoveryServerCall) {
        let key = ObjectIdentifier(call)
        guard let gone = subscribers.withLockedValue({ $0[key] }) else { return }
        // The push it causes is pending before the proxy leaves the list: no look in between
        // sees the others converged on endpoints that still include it.
        onMembershipChange(gone.node, false)
        subscribers.withLockedValue { _ = $0.removeValue(forKey: key) }
        logger.info("proxy disconnected", metadata: ["proxy": "\(gone.id)"])
    }

    // MARK: pushes

    /// After a control-plane restart the registry fills up as the sidecars reconnect, one by
    /// one. For `seconds`, a proxy that reconnects already running a config (its first request
    /// names a version) is registered at once but sent nothing, so it keeps its complete
    /// config instead of one that lacks the workloads not back yet; then every held proxy gets
    /// its config. A proxy without a config is served at once.
    public func holdReconnectingProxies(for seconds: Double) {
        guard seconds > 0 else { return }
        holding.withLockedValue { $0 = true }
        work.asyncAfter(deadline: .now() + seconds) { [weak self] in self?.releaseHeldProxies() }
    }

    private func releaseHeldProxies() {
        let released = subscribers.withLockedValue { subs in
            holding.withLockedValue { $0 = false }
            return subs.values.filter(\.held).map { s in
                s.held = false
                return s
            }
        }
        logger.info("registry settled; sending held proxies their config", metadata: ["proxies": "\(released.count)"])
        let now = DispatchTime.now()
        for s in released { push(to: s, changedAt: now) }
    }

    public func setSource(_ newSource: @escaping ConfigSource) {
        handlers.withLockedValue { $0.source = newSource }
    }

    /// Recomputes every proxy's config and sends what changed, soon, on the push queue.
    /// `changedAt`: when the change this push answers was taken up (convergence is timed from it).
    public func pushAll(changedAt: DispatchTime = .now()) {
        let alreadyPending = pushAllPending.withLockedValue { pending in
            defer { pending = min(pending ?? changedAt, changedAt) }
            return pending != nil
        }
        guard !alreadyPending else { return }
        onWork {
            let changedAt = self.pushAllPending.withLockedValue { pending in
                defer { pending = nil }
                return pending ?? .now()
            }
            let started = DispatchTime.now()
            let all = self.subscribers.withLockedValue { Array($0.values) }
            let sent = all.reduce(0) { $0 + (self.push(to: $1, changedAt: changedAt) ? 1 : 0) }
            let ms = (DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000
            self.logger.debug("pushed", metadata: ["proxies": "\(all.count)", "sent": "\(sent)", "ms": "\(ms)"])
        }
    }

    /// Runs `body` on the push queue, counted as pending from now until it finished.
    private func onWork(_ body: @escaping @Sendable () -> Void) {
        pushWork.withLockedValue {
            $0.pending += 1
            $0.scheduled += 1
        }
        work.async {
            body()
            self.pushWork.withLockedValue { $0.pending -= 1 }
        }
    }

    /// Pushes scheduled and not finished, and a count of every push ever scheduled (it tells
    /// whether one started and finished between two looks).
    public var pushWorkState: (pending: Int, scheduled: Int) { pushWork.withLockedValue { $0 } }

    /// Returns whether a response was sent; none to a held proxy. Runs only on `work`, so
    /// pushes happen one at a time and a config computed from an older registry never
    /// goes out after a newer one.
    @discardableResult
    private func push(to s: Subscriber, changedAt: DispatchTime) -> Bool {
        dispatchPrecondition(condition: .onQueue(work))
        guard !subscribers.withLockedValue({ _ in s.held }) else { return false }
        guard let next = handlers.withLockedValue({ $0.source })(s.node) else { return false }
        let sent: (parts: [ByteBuffer], types: Set<String>)? = subscribers.withLockedValue { _ in
            guard s.needsFull || next.version != s.sentVersion else { return nil }
            let full = s.needsFull
            var types = full ? next.shared.types : []
            var r = Meshd_Discovery_V1_DiscoveryResponse()
            r.typeURL = Discovery.typeURL
            r.versionInfo = next.version
            s.nonce += 1
            r.nonce = String(s.nonce)
            r.incremental = !full
            for name in next.own.keys.sorted() where full || s.sent.own[name]?.version != next.own[name]!.version {
                var res = Meshd_Discovery_V1_Resource()
                res.name = name
                res.version = next.own[name]!.version
                res.body = Data(next.own[name]!.body)
                r.resources.append(res)
                types.insert(PushMetrics.type(ofResource: name))
            }
            if !full { r.removedResources = s.sent.own.keys.filter { next[$0] == nil }.sorted() }
            types.formUnion(r.removedResources.map(PushMetrics.type(ofResource:)))
            // The shared part's encoding follows this one's: one response with both.
            let shared: ByteBuffer
            if full {
                shared = next.shared.fullEncoding()
            } else {
                let change = next.shared.change(since: s.sent.shared)
                shared = change.bytes
                types.formUnion(change.types)
            }
            s.sent = next
            s.sentVersion = next.version
            s.needsFull = false
            s.convergingSince = min(s.convergingSince ?? changedAt, changedAt)
            guard let envelope: [UInt8] = try? r.serializedBytes() else { return nil }
            var head = ByteBuffer()
            head.reserveCapacity(5 + envelope.count)
            head.writeInteger(UInt8(0))
            head.writeInteger(UInt32(envelope.count + shared.readableBytes))
            head.writeBytes(envelope)
            return (shared.readableBytes == 0 ? [head] : [head, shared], types)
        }
        guard let sent else { return false }
        metricsBox.withLockedValue { $0.recordPush(types: sent.types) }
        let call = s.call
        s.eventLoop.execute { call.value.send(sent.parts) }
        return true
    }

    public var statuses: [ProxyStatus] {
        subscribers.withLockedValue { subs in
            subs.values.map { s in
                // Nothing sent yet (the proxy waits for its join batch, or is held): STALE, not SYNCED.
                let status: SyncStatus = s.nackReason != nil ? .nack
                    : (!s.sentVersion.isEmpty && s.ackedVersion == s.sentVersion ? .synced : .stale)
                return ProxyStatus(id: s.id, kind: s.node.kind, name: s.node.name, namespace: s.node.namespace,
                                   address: s.node.address, adminAddress: s.node.adminAddress, sentVersion: s.sentVersion,
                                   ackedVersion: s.ackedVersion, status: status, nackReason: s.nackReason,
                                   connectedAt: s.connectedAt, warnings: s.sent.warnings, plugins: s.ackedPlugins,
                                   proxyVersion: s.node.meshdVersion,
                                   resources: TypeSync.of(sent: s.sentVersion.isEmpty ? nil : s.sent, acked: s.acked,
                                                          nacked: s.nackReason != nil))
            }.sorted { $0.id < $1.id }
        }
    }

    /// Pushes by type and convergence times so far.
    public var metrics: PushMetrics { metricsBox.withLockedValue { $0 } }
}
