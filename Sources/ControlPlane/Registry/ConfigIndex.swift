/// Lookups over a store that the analyzer and the translator share: DestinationRules by
/// host, Gateways by reference, VirtualServices by gateway.
struct ConfigIndex {
    let store: ConfigStore
    let destinationRules: [Config<DestinationRule>]
    let gateways: [Config<Gateway>]
    /// Root VirtualServices with their delegates' routes merged in (VirtualServiceDelegation).
    let virtualServices: [Config<VirtualService>]
    /// What delegation could not do: (resource id, field path, message).
    let delegationWarnings: [(String, String, String)]
    /// Positions in `destinationRules` by FQDN host, and of those whose host is a wildcard.
    private let destinationRulesByHost: [String: [Int]]
    private let wildcardDestinationRules: [Int]

    init(_ store: ConfigStore) {
        self.store = store
        destinationRules = store.destinationRules
        gateways = store.gateways
        let delegation = VirtualServiceDelegation.resolve(store.virtualServices)
        virtualServices = delegation.virtualServices
        delegationWarnings = delegation.warnings
        var byHost: [String: [Int]] = [:]
        var wildcards: [Int] = []
        for (i, dr) in destinationRules.enumerated() {
            guard let h = dr.spec.host else { continue }
            let fqdn = HostNames.fqdn(h, namespace: dr.namespace)
            if fqdn.hasPrefix("*") { wildcards.append(i) } else { byHost[fqdn, default: []].append(i) }
        }
        destinationRulesByHost = byHost
        wildcardDestinationRules = wildcards
    }

    /// Whether a resource with `exportTo` in `namespace` is visible from `client` (nil: anyone).
    static func exported(_ exportTo: [String], from namespace: String, to client: String?) -> Bool {
        guard let client, !exportTo.isEmpty else { return true }
        return exportTo.contains("*") || exportTo.contains(client) || (exportTo.contains(".") && namespace == client)
    }

    /// The DestinationRule for a service host, as Istio picks it: an exact host before a
    /// wildcard, then one in the client's namespace, then one in the service's, then the first.
    /// With a client, only rules exported to it and whose workloadSelector matches it count.
    func destinationRule(for host: String, clientNamespace: String? = nil, clientLabels: [String: String]? = nil)
        -> Config<DestinationRule>? {
        let serviceNamespace = HostNames.kubernetesParts(host)?.namespace
        // Only rules for this host or a wildcard can match; kept in load order.
        let positions = ((destinationRulesByHost[host] ?? []) + wildcardDestinationRules).sorted()
        let candidates = positions.map { destinationRules[$0] }.filter { dr in
            guard let h = dr.spec.host else { return false }
            guard HostNames.matches(pattern: HostNames.fqdn(h, namespace: dr.namespace), host: host) else { return false }
            guard Self.exported(dr.spec.exportTo, from: dr.namespace, to: clientNamespace) else { return false }
            if let selector = dr.spec.workloadSelector?.matchLabels, let clientNamespace {
                return dr.namespace == clientNamespace && (clientLabels ?? [:]).matches(selector)
            }
            return true
        }
        func rank(_ dr: Config<DestinationRule>, _ order: Int) -> (Int, Int, Int) {
            let exact = HostNames.fqdn(dr.spec.host ?? "", namespace: dr.namespace) == host ? 0 : 1
            let ns = dr.namespace == clientNamespace ? 0 : dr.namespace == serviceNamespace ? 1 : 2
            return (exact, ns, order)
        }
        return candidates.enumerated().min { rank($0.element, $0.offset) < rank($1.element, $1.offset) }?.element
    }

    /// The Gateway a VirtualService in `namespace` names as `ref` (`name` or `ns/name`).
    func gateway(_ ref: String, from namespace: String) -> Config<Gateway>? {
        let (ns, name) = Self.split(ref, namespace)
        return gateways.first { $0.namespace == ns && $0.name == name }
    }

    static func split(_ ref: String, _ namespace: String) -> (String, String) {
        let parts = ref.split(separator: "/", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : (namespace, ref)
    }

    /// VirtualServices bound to the Gateway `ns/name`.
    func virtualServices(boundTo gateway: Config<Gateway>) -> [Config<VirtualService>] {
        virtualServices.filter { vs in
            let refs = vs.spec.gateways + vs.spec.http.flatMap { $0.match.flatMap(\.gateways) }
            return refs.contains { ref in
                ref != "mesh" && Self.split(ref, vs.namespace) == (gateway.namespace, gateway.name)
            }
        }
    }
}
