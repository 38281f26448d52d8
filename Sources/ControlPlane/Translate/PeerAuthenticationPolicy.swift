import MeshAPI

/// A workload's effective PeerAuthentication mode, with Istio's inheritance: the
/// workload-selector policy (its `portLevelMtls` for the port first), else the namespace's
/// (no selector), else the mesh-wide one (root namespace, no selector); UNSET or no mode
/// defers to the next level; nothing anywhere is PERMISSIVE.
/// Several policies at one level: the oldest wins in Istio; meshd has no creation time and
/// takes the first by name (documented in docs/security.md).
enum PeerAuthenticationPolicy {
    enum Mode: String, Sendable { case strict = "STRICT", permissive = "PERMISSIVE", disable = "DISABLE" }

    static func mode(namespace: String, labels: [String: String], port: Int?, store: ConfigStore) -> Mode {
        let rootNamespace = store.meshConfig.rootNamespace
        let all = store.peerAuthentications.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        let workload = all.first {
            $0.namespace == namespace && $0.spec.selector.map { !$0.matchLabels.isEmpty && labels.matches($0.matchLabels) } == true
        }
        let namespaceWide = all.first { $0.namespace == namespace && ($0.spec.selector?.matchLabels.isEmpty ?? true) }
        let meshWide = all.first { $0.namespace == rootNamespace && ($0.spec.selector?.matchLabels.isEmpty ?? true) }
        var levels: [String?] = []
        if let workload {
            if let port { levels.append(workload.spec.portLevelMtls[String(port)]?.mode) }
            levels.append(workload.spec.mtls?.mode)
        }
        levels.append(namespaceWide?.spec.mtls?.mode)
        levels.append(meshWide?.spec.mtls?.mode)
        for case let mode? in levels where mode != "UNSET" {
            if let m = Mode(rawValue: mode) { return m }
        }
        return .permissive
    }

    static func listenerMode(_ mode: Mode) -> MeshTLSMode? {
        switch mode {
        case .strict: return .strict
        case .permissive: return .permissive
        case .disable: return nil
        }
    }
}
