/// What a sidecar may reach: services and VirtualServices exported to its namespace and,
/// when a Sidecar resource applies to it, named by that resource's `egress[].hosts`.
struct SidecarScope {
    /// `(namespace part, host pattern)` from the applicable Sidecar; nil: no Sidecar, all visible.
    private(set) var egress: [(namespace: String, host: String)]?
    /// Its `egress[]` entries with a port: each is a listener of its own (`SidecarEgressBuilder`).
    let portListeners: [Sidecar.EgressListener]
    let sidecarNamespace: String
    let proxyNamespace: String
    let applies: Bool
    /// The Sidecar resource that applies (`Kind/ns/name`), if any.
    let source: String?
    /// Its `outboundTrafficPolicy` (it overrides the mesh config's).
    let outboundTrafficPolicy: Sidecar.OutboundTrafficPolicy?

    init(proxy: ProxyIdentity, store: ConfigStore) {
        proxyNamespace = proxy.namespace
        applies = proxy.kind == .sidecar
        let sidecars = store.sidecars
        let chosen = sidecars.first { $0.namespace == proxy.namespace && $0.spec.workloadSelector.map { proxy.labels.matches($0.labels) } == true }
            ?? sidecars.first { $0.namespace == proxy.namespace && $0.spec.workloadSelector == nil }
            ?? sidecars.first { $0.namespace == store.meshConfig.rootNamespace && $0.spec.workloadSelector == nil }
        sidecarNamespace = chosen?.namespace ?? proxy.namespace
        source = applies ? chosen?.id : nil
        outboundTrafficPolicy = applies ? chosen?.spec.outboundTrafficPolicy : nil
        egress = chosen.map { Self.parse($0.spec.egress.flatMap(\.hosts)) }
        portListeners = applies ? (chosen?.spec.egress ?? []).filter { $0.port?.number != nil } : []
    }

    /// The scope of one egress listener: only its own hosts are visible.
    func narrowed(to hosts: [String]) -> SidecarScope {
        var scope = self
        scope.egress = Self.parse(hosts)
        return scope
    }

    private static func parse(_ hosts: [String]) -> [(namespace: String, host: String)] {
        hosts.compactMap { h in
            let parts = h.split(separator: "/", maxSplits: 1).map(String.init)
            return parts.count == 2 ? (parts[0], parts[1].lowercased()) : nil
        }
    }

    /// Whether something defined in `namespace` for `host` (FQDN or pattern) is visible.
    func visible(namespace: String, host: String, exportTo: [String]) -> Bool {
        guard ConfigIndex.exported(exportTo, from: namespace, to: proxyNamespace) else { return false }
        guard applies, let egress else { return true }
        return egress.contains { entry in
            let nsOK = switch entry.namespace {
            case "*": true
            case ".": namespace == sidecarNamespace
            case "~": false
            default: namespace == entry.namespace
            }
            return nsOK && (HostNames.matches(pattern: entry.host, host: host) || HostNames.matches(pattern: host, host: entry.host))
        }
    }
}
