import FilterHost
import MeshAPI

/// `meshd.rbac` as a network filter on a TCP proxy listener: Envoy's network RBAC as Istio
/// configures it. The policies come in the `meshd.rbac` shape, already reduced by the control
/// plane to what a connection has (ports, addresses, SNI, principals); the connection is asked
/// about once its SNI is known and before an upstream is picked. DENY, then ALLOW; AUDIT never
/// closes; CUSTOM is HTTP only and never arrives here. A denied connection is closed with
/// Envoy's termination details `rbac_access_denied_matched_policy[<policy>|none]`.
struct RBACNetworkFactory: NetworkFilterFactory {
    let config: RBACConfig

    static func build(_ config: JSONValue?) throws -> NetworkFilterFactory { RBACNetworkFactory(config: try RBACConfig(config)) }

    func makeObserver(stats: StatsScope) -> TCPConnectionObserver { RBACNetworkFilter(config: config, stats: stats) }
}

final class RBACNetworkFilter: TCPConnectionObserver {
    private let config: RBACConfig
    private let stats: StatsScope

    init(config: RBACConfig, stats: StatsScope) {
        self.config = config
        self.stats = stats
    }

    func admit(_ facts: TCPConnectionFacts) -> TCPAdmission {
        let request = RBACRequest(head: nil, connection: facts.connection, metadata: nil, destinationPort: config.destinationPort)
        let labels = "{listener=\"\(facts.listener)\"}"
        for result in RBACFilter.dryRun(config.dryRun, request) { stats.count(result.stat, 1) }
        switch RBACFilter.decide(config.policies, request, afterCustom: true) {
        case .allow, .check:
            stats.count("meshd_rbac_tcp_allowed_total\(labels)", 1)
            return .admit
        case .deny(let policy):
            stats.count("meshd_rbac_tcp_denied_total\(labels)", 1)
            return .reject(details: "rbac_access_denied_matched_policy[\(policy ?? "none")]")
        }
    }
}
