/// What meshd does with a document's kind: read it, skip it with a note naming what to use
/// instead (a kind it does not implement, as istiod ignores kinds it does not watch), or
/// refuse it (an unknown kind in an Istio or meshd group: most likely a typo).
enum KindSupport: Equatable {
    case implemented
    case skipped(String)
    case unknown(String)

    /// Groups whose kinds meshd knows all of: anything else in them is a mistake.
    static let ownGroups: Set<String> = ["networking.istio.io", "security.istio.io", "extensions.istio.io",
                                         "extensions.meshd.io", "telemetry.istio.io"]
    /// Kubernetes' own API groups ("" is the core group: `apiVersion: v1`).
    static let kubernetesGroups: Set<String> = [
        "", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io", "networking.k8s.io",
        "discovery.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "storage.k8s.io",
        "scheduling.k8s.io", "coordination.k8s.io", "certificates.k8s.io", "node.k8s.io",
    ]
    static let kubernetesNote = "meshd has no Kubernetes API server, so it does not read this Kubernetes kind; skipped. Declare services with a ServiceEntry and workloads with WorkloadEntries (or `meshd sidecar`)"

    static func classify(kind: String, apiVersion: String) -> KindSupport {
        let group = apiVersion.contains("/") ? String(apiVersion.split(separator: "/")[0]) : ""
        if let known = ResourceKind(rawValue: kind), known.group == group { return .implemented }
        switch (group, kind) {
        case ("networking.istio.io", "EnvoyFilter"):
            return .skipped("EnvoyFilter is not supported (meshd proxies are not Envoy); skipped. Use a LuaPlugin or a TrafficExtension")
        case ("networking.istio.io", "ProxyConfig"):
            return .skipped("ProxyConfig is not implemented by meshd; skipped (proxies use their command-line settings)")
        case ("extensions.istio.io", "WasmPlugin"):
            return .skipped("WasmPlugin is not supported (meshd runs no Wasm); skipped. Use a LuaPlugin")
        default: break
        }
        if group.hasSuffix("gateway.networking.k8s.io") {
            return .skipped("Gateway API kinds are not implemented by meshd; \(kind) skipped. Use a networking.istio.io Gateway and VirtualService")
        }
        if kubernetesGroups.contains(group) { return .skipped(kubernetesNote) }
        if ownGroups.contains(group) {
            let kinds = ResourceKind.allCases.filter { $0.group == group }.map(\.rawValue)
            var reason = "unknown kind \"\(kind)\" (\(apiVersion))"
            if let near = kinds.first(where: { ObjectReader.isNear($0, kind) || $0.lowercased().sorted() == kind.lowercased().sorted() }) {
                reason += "; did you mean \"\(near)\"?"
            } else {
                reason += "; known kinds: \(ResourceKind.allCases.map(\.rawValue).joined(separator: ", "))"
            }
            return .unknown(reason)
        }
        if ResourceKind(rawValue: kind) != nil {
            // A kind meshd knows under a group it does not: the apiVersion is wrong.
            return .implemented
        }
        return .skipped("\(kind) (\(apiVersion)) is not a kind meshd implements; skipped")
    }
}
