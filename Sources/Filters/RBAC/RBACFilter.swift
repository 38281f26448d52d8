import FilterHost
import MeshAPI
import NIOHTTP1
import Transport

/// Enforces AuthorizationPolicies on the request headers, in Istio's order: a matching
/// CUSTOM or DENY policy denies; then, when any ALLOW policy applies, one must match. AUDIT
/// policies never deny: a match sets Envoy's `access_log_hint`. A denied request gets 403
/// `RBAC: access denied` and the `RBAC` response flag, as from Envoy's RBAC filter.
final class RBACFilter: HTTPFilter {
    private let config: RBACConfig
    private unowned let stream: StreamControl

    init(config: RBACConfig, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        let request = RBACRequest(head: head, connection: stream.connectionInfo,
                                  metadata: stream.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace],
                                  destinationPort: config.destinationPort,
                                  remoteFromForwardedFor: config.remoteFromForwardedFor)
        switch Self.decide(config.policies, request) {
        case .allow(let audited):
            if audited { stream.streamInfo.dynamicMetadata["envoy.common", default: [:]]["access_log_hint"] = .bool(true) }
            stream.stats?.count("meshd_rbac_allowed_total", 1)
            return .continue
        case .deny(let policy):
            stream.stats?.count("meshd_rbac_denied_total", 1)
            if let policy {
                stream.streamInfo.dynamicMetadata["envoy.filters.http.rbac", default: [:]]["enforced_effective_policy_id"] = .string(policy)
            }
            stream.sendLocalReply(status: 403, body: "RBAC: access denied", headers: HTTPHeaders(),
                                  flag: .rbacAccessDenied, from: self)
            return .stop
        }
    }

    enum Decision: Equatable {
        case allow(audited: Bool)
        /// The policy that denied; nil when no ALLOW policy matched.
        case deny(String?)
    }

    static func decide(_ policies: [RBACPolicy], _ request: RBACRequest) -> Decision {
        if let denying = policies.first(where: { ($0.action == .custom || $0.action == .deny) && $0.matches(request) }) {
            return .deny(denying.name)
        }
        let allows = policies.filter { $0.action == .allow }
        if !allows.isEmpty && !allows.contains(where: { $0.matches(request) }) { return .deny(nil) }
        return .allow(audited: policies.contains { $0.action == .audit && $0.matches(request) })
    }
}
