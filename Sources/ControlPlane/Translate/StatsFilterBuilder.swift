import MeshAPI

/// Istio's stats filter (`istio.stats`) for a proxy's listener: which end reports and the
/// proxy's own workload facts (as the sidecar registered them), which it sends its peers in
/// Istio's metadata-exchange headers and uses for its half of the labels.
enum StatsFilterBuilder {
    enum Reporter: String {
        /// Outbound listeners and gateways: the client's end.
        case source
        /// Inbound listeners: the server's end.
        case destination
    }

    static let filterName = "istio.stats"

    static func filter(for proxy: ProxyIdentity, reporter: Reporter) -> HTTPFilterConfig {
        let workload: [String: JSONValue] = [
            "name": .string(proxy.name),
            "namespace": .string(proxy.namespace),
            "labels": .object(proxy.labels.mapValues { .string($0) }),
            "serviceAccount": .string(proxy.serviceAccount),
            "nodeId": .string("\(proxy.kind.rawValue)~\(proxy.address)~\(proxy.name).\(proxy.namespace)"),
        ]
        return HTTPFilterConfig(name: filterName, config: .object(["reporter": .string(reporter.rawValue),
                                                                   "workload": .object(workload)]))
    }

    /// `filters` put at the front of a listener's chain, but behind `istio.stats`: it stays
    /// first, so it takes the peer's exchange headers off every request and counts the
    /// requests an earlier filter answers (an RBAC denial) with the peer's labels.
    static func prepending(_ filters: [HTTPFilterConfig], to chain: [HTTPFilterConfig]?) -> [HTTPFilterConfig] {
        var chain = chain ?? []
        guard chain.first?.name == filterName else { return filters + chain }
        let stats = chain.removeFirst()
        return [stats] + filters + chain
    }
}
