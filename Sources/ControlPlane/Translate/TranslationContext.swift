import MeshAPI

/// What one translation collects while it runs: the clusters routes need, which virtual
/// hosts and listeners came from which resource (for plugin attachment), and warnings.
final class TranslationContext {
    let proxy: ProxyIdentity
    let store: ConfigStore
    let registry: Registry
    let index: ConfigIndex
    let scope: SidecarScope

    var clusterKeys = Set<ClusterKey>()
    /// Istio's SNI-DNAT clusters an AUTO_PASSTHROUGH gateway forwards to (`ClusterBuilder.sniDnat`).
    var sniDnatKeys = Set<ClusterKey>()
    /// Clusters for destinations outside the registry (a `jwksUri`'s host), by name.
    var extraClusters: [String: Cluster] = [:]
    private(set) var warnings = Set<String>()
    /// Resources (`Kind/ns/name`) this proxy's config was made from: their warnings are its own.
    private(set) var used = Set<String>()
    /// Virtual host names by service FQDN and by VirtualService id.
    var vhostsByService: [String: Set<String>] = [:]
    var vhostsByVirtualService: [String: Set<String>] = [:]
    /// Names of the http routes each VirtualService put on this proxy (a plugin's `sectionName`).
    var routesByVirtualService: [String: Set<String>] = [:]
    /// Listener names by Gateway id, and every HTTP listener of the proxy.
    var listenersByGateway: [String: Set<String>] = [:]
    var outboundListeners: [String] = []
    var inboundListeners: [String] = []

    init(proxy: ProxyIdentity, store: ConfigStore, registry: Registry) {
        self.proxy = proxy
        self.store = store
        self.registry = registry
        self.index = ConfigIndex(store)
        self.scope = SidecarScope(proxy: proxy, store: store)
        for (id, path, message) in index.delegationWarnings { warn(id, path, message) }
        if let sidecar = scope.source { used.insert(sidecar) }
        for (id, namespace, selector) in Self.policies(store)
        where (namespace == proxy.namespace || namespace == store.meshConfig.rootNamespace) && proxy.labels.matches(selector) {
            used.insert(id)
        }
    }

    /// The security policies with their namespace and selector (a proxy they select uses them,
    /// and so carries their warnings).
    static func policies(_ store: ConfigStore) -> [(id: String, namespace: String, selector: [String: String])] {
        store.effective.compactMap { r in
            let selector: LabelSelector?
            switch r.spec {
            case .peerAuthentication(let s): selector = s.selector
            case .requestAuthentication(let s): selector = s.selector
            case .authorizationPolicy(let s): selector = s.selector
            default: return nil
            }
            return (r.id, r.meta.namespace, selector?.matchLabels ?? [:])
        }
    }

    func use(_ resource: String) {
        used.insert(resource)
    }

    func warn(_ resource: String, _ path: String, _ message: String) {
        warnings.insert(path.isEmpty ? "\(resource): \(message)" : "\(resource): \(path): \(message)")
    }

    /// The cluster for a destination, recorded so it is built.
    func cluster(host: String, port: Int, subset: String?) -> String {
        let key = ClusterKey(host: host, port: port, subset: subset ?? "")
        clusterKeys.insert(key)
        return key.name
    }

    /// The SNI-DNAT cluster for a destination (named in Istio's SNI form), recorded so it is built.
    func sniDnatCluster(host: String, port: Int, subset: String) -> String {
        let key = ClusterKey(host: host, port: port, subset: subset)
        sniDnatKeys.insert(key)
        return key.sniName
    }
}
