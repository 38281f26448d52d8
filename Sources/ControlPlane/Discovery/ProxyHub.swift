import FilterHost
import Foundation
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// Every proxy connected to the discovery server: what it was sent, what it accepted
/// (ACK) or refused (NACK, with its reason). Pushes send only resources that changed.
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
    }

    /// Makes a proxy's config from its identity; nil when the control plane has no good config yet.
    public typealias ConfigSource = @Sendable (Meshd_Discovery_V1_Node) -> Bootstrap?

    final class Subscriber: @unchecked Sendable {
        // Only touched under the hub's lock, except `call`, which is used on `eventLoop` only.
        let id: String
        let node: Meshd_Discovery_V1_Node
        let eventLoop: EventLoop
        let call: NIOLoopBound<DiscoveryServerCall>
        var sent: [String: ResourceEntry] = [:]
        var sentVersion = ""
        var ackedVersion = ""
        var nonce = 0
        var nackReason: String?
        var needsFull = true
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
    private let pushing = NIOLock()
    private let source: NIOLockedValueBox<ConfigSource>
    private let logger: Logger
    public typealias MembershipHandler = @Sendable (Meshd_Discovery_V1_Node, Bool) -> Void
    private let membership: NIOLockedValueBox<MembershipHandler>

    public init(logger: Logger, source: @escaping ConfigSource,
                onMembershipChange: @escaping MembershipHandler = { _, _ in }) {
        self.logger = logger
        self.source = NIOLockedValueBox(source)
        self.membership = NIOLockedValueBox(onMembershipChange)
    }

    public func setMembershipHandler(_ handler: @escaping MembershipHandler) {
        membership.withLockedValue { $0 = handler }
    }

    private func onMembershipChange(_ node: Meshd_Discovery_V1_Node, _ joined: Bool) {
        membership.withLockedValue { $0 }(node, joined)
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
            push(to: subscriber)
            return
        }
        subscribers.withLockedValue { _ in
            guard !request.responseNonce.isEmpty, request.responseNonce == String(subscriber.nonce) else { return }
            if request.hasErrorDetail {
                subscriber.nackReason = request.errorDetail.message
                subscriber.needsFull = true
                logger.warning("proxy refused config (NACK)", metadata: ["proxy": "\(subscriber.id)", "reason": "\(request.errorDetail.message)"])
            } else {
                subscriber.ackedVersion = request.versionInfo
                subscriber.nackReason = nil
            }
        }
    }

    func closed(_ call: DiscoveryServerCall) {
        let removed = subscribers.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(call)) }
        if let removed {
            logger.info("proxy disconnected", metadata: ["proxy": "\(removed.id)"])
            onMembershipChange(removed.node, false)
        }
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
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [weak self] in self?.releaseHeldProxies() }
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
        for s in released { push(to: s) }
    }

    public func setSource(_ newSource: @escaping ConfigSource) {
        source.withLockedValue { $0 = newSource }
    }

    /// Recomputes every proxy's config and sends what changed.
    public func pushAll() {
        for s in subscribers.withLockedValue({ Array($0.values) }) { push(to: s) }
    }

    private func push(to s: Subscriber) {
        // One push at a time: pushes run on several threads (config reloads, proxies joining
        // on different loops), and a config computed from an older registry must not be sent
        // after one computed from a newer one.
        pushing.withLock { pushLocked(to: s) }
    }

    private func pushLocked(to s: Subscriber) {
        guard !subscribers.withLockedValue({ _ in s.held }) else { return }
        guard let bootstrap = source.withLockedValue({ $0 })(s.node) else { return }
        let next = ResourceCodec.resources(of: bootstrap)
        let message: Meshd_Discovery_V1_DiscoveryResponse? = subscribers.withLockedValue { _ in
            let version = Self.version(of: next)
            guard s.needsFull || version != s.sentVersion else { return nil }
            var r = Meshd_Discovery_V1_DiscoveryResponse()
            r.typeURL = DiscoveryClient.typeURL
            r.versionInfo = version
            s.nonce += 1
            r.nonce = String(s.nonce)
            r.incremental = !s.needsFull
            for (name, entry) in next.sorted(by: { $0.key < $1.key }) where s.needsFull || s.sent[name]?.version != entry.version {
                var res = Meshd_Discovery_V1_Resource()
                res.name = name
                res.version = entry.version
                res.body = Data(entry.body)
                r.resources.append(res)
            }
            if !s.needsFull { r.removedResources = s.sent.keys.filter { next[$0] == nil }.sorted() }
            s.sent = next
            s.sentVersion = version
            s.needsFull = false
            return r
        }
        guard let message, let bytes: [UInt8] = try? message.serializedBytes() else { return }
        let call = s.call
        s.eventLoop.execute { call.value.send(GRPCFrame.frame(bytes)) }
    }

    static func version(of resources: [String: ResourceEntry]) -> String {
        let joined = resources.keys.sorted().map { "\($0)=\(resources[$0]!.version)" }.joined(separator: ";")
        return ResourceCodec.fnv1a(Array(joined.utf8))
    }

    public var statuses: [ProxyStatus] {
        subscribers.withLockedValue { subs in
            subs.values.map { s in
                let status: SyncStatus = s.nackReason != nil ? .nack : (s.ackedVersion == s.sentVersion ? .synced : .stale)
                return ProxyStatus(id: s.id, kind: s.node.kind, name: s.node.name, namespace: s.node.namespace,
                                   address: s.node.address, adminAddress: s.node.adminAddress, sentVersion: s.sentVersion,
                                   ackedVersion: s.ackedVersion, status: status, nackReason: s.nackReason,
                                   connectedAt: s.connectedAt)
            }.sorted { $0.id < $1.id }
        }
    }
}
