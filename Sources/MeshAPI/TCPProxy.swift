/// A listener that proxies bytes instead of HTTP: Envoy's `tcp_proxy` network filter with
/// the filter-chain match in front of it (`serverNames` from the TLS ClientHello,
/// `sourcePrefixes`). The first route whose match fits the connection picks the cluster.
public struct TCPProxy: Codable, Sendable, Equatable {
    public var routes: [TCPProxyRoute]
    /// Close a connection with no bytes either way for this long (Envoy's default 1 h; 0 disables).
    public var idleTimeoutMs: Int?
    /// How long to wait for a ClientHello when a route matches on `serverNames` (default 15000,
    /// Envoy's `listener_filters_timeout`); after it, the connection is matched without one.
    public var inspectTimeoutMs: Int?
    /// Filters that watch each connection, by name and config (Envoy's network filters in
    /// front of `tcp_proxy`; `istio.stats` makes Istio's TCP metrics).
    public var networkFilters: [HTTPFilterConfig]?

    public init(routes: [TCPProxyRoute], idleTimeoutMs: Int? = nil, inspectTimeoutMs: Int? = nil,
                networkFilters: [HTTPFilterConfig]? = nil) {
        self.routes = routes
        self.idleTimeoutMs = idleTimeoutMs
        self.inspectTimeoutMs = inspectTimeoutMs
        self.networkFilters = networkFilters
    }
}

public struct TCPProxyRoute: Codable, Sendable, Equatable {
    public var name: String?
    public var match: TCPProxyMatch?
    public var cluster: String?
    public var weightedClusters: [WeightedCluster]?

    public init(name: String? = nil, match: TCPProxyMatch? = nil, cluster: String? = nil,
                weightedClusters: [WeightedCluster]? = nil) {
        self.name = name
        self.match = match
        self.cluster = cluster
        self.weightedClusters = weightedClusters
    }
}

/// Every field set must match; an empty or absent list matches anything.
public struct TCPProxyMatch: Codable, Sendable, Equatable {
    /// SNI names from the ClientHello: exact, or `*.example.com` (any deeper name).
    public var serverNames: [String]?
    /// Client address CIDRs (`10.0.0.0/8`, `127.0.0.1/32`, `::1/128`).
    public var sourcePrefixes: [String]?
    /// Local address CIDRs the connection arrived on (Istio's `destinationSubnets`).
    public var destinationPrefixes: [String]?

    public init(serverNames: [String]? = nil, sourcePrefixes: [String]? = nil, destinationPrefixes: [String]? = nil) {
        self.serverNames = serverNames
        self.sourcePrefixes = sourcePrefixes
        self.destinationPrefixes = destinationPrefixes
    }
}

/// Istio's SNI form of an outbound cluster name (`model.BuildDNSSrvSubsetKey`):
/// `outbound|9080|v1|reviews.default.svc.cluster.local` is
/// `outbound_.9080_.v1_.reviews.default.svc.cluster.local`. A sidecar sends it as the SNI of
/// mesh mTLS; an AUTO_PASSTHROUGH gateway routes on it without terminating TLS.
public enum IstioSNI {
    public static func name(direction: String = "outbound", port: Int, subset: String, host: String) -> String {
        "\(direction)_.\(port)_.\(subset)_.\(host)"
    }

    /// The SNI form of a `direction|port|subset|host` cluster name; nil for any other name.
    public static func name(forCluster cluster: String) -> String? {
        let parts = cluster.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4, let port = Int(parts[1]), !parts[3].isEmpty else { return nil }
        return name(direction: String(parts[0]), port: port, subset: String(parts[2]), host: String(parts[3]))
    }
}
