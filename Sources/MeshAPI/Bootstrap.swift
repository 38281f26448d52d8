/// The proxy's static bootstrap and the resources the control plane pushes.
/// Field names follow Envoy's where one exists, in camelCase as in Istio's YAML.
public struct Bootstrap: Codable, Sendable, Equatable {
    public var admin: AdminConfig?
    public var listeners: [Listener]
    public var routeConfigs: [RouteConfig]
    public var clusters: [Cluster]
    /// Lua plugins, placed in each listener's chain after its `httpFilters`.
    public var luaPlugins: [LuaPlugin]

    public init(admin: AdminConfig? = nil, listeners: [Listener] = [], routeConfigs: [RouteConfig] = [],
                clusters: [Cluster] = [], luaPlugins: [LuaPlugin] = []) {
        self.admin = admin
        self.listeners = listeners
        self.routeConfigs = routeConfigs
        self.clusters = clusters
        self.luaPlugins = luaPlugins
    }

    enum CodingKeys: String, CodingKey { case admin, listeners, routeConfigs, clusters, luaPlugins }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        admin = try c.decodeIfPresent(AdminConfig.self, forKey: .admin)
        listeners = try c.decodeIfPresent([Listener].self, forKey: .listeners) ?? []
        routeConfigs = try c.decodeIfPresent([RouteConfig].self, forKey: .routeConfigs) ?? []
        clusters = try c.decodeIfPresent([Cluster].self, forKey: .clusters) ?? []
        luaPlugins = try c.decodeIfPresent([LuaPlugin].self, forKey: .luaPlugins) ?? []
    }
}

public struct AdminConfig: Codable, Sendable, Equatable {
    public var address: String?
    public var port: Int?
}

/// One downstream listener: a socket, optional TLS, and the HTTP filter chain behind it.
public struct Listener: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    public var port: Int
    public var tls: ListenerTLS?
    /// Name of the RouteConfig the router uses.
    public var routeConfig: String
    /// Filters before the router, in order. The router is always last.
    public var httpFilters: [HTTPFilterConfig]?
    /// Close a connection with no request in flight after this long (default 300000 ms).
    public var idleTimeoutMs: Int?
    /// A request's headers must arrive within this long (default 10000 ms).
    public var requestHeadersTimeoutMs: Int?
    /// Largest request header block (default 60 KiB); larger is answered 431.
    public var maxRequestHeadersKb: Int?
    /// Largest body a filter may buffer (default 1 MiB); larger is answered 413.
    public var perConnectionBufferLimitBytes: Int?
    /// HTTP/2: resets a client may send per 10 s before the connection is closed.
    public var http2MaxResetsPerWindow: Int?
    /// Emit an access log line per request (default true).
    public var accessLog: Bool?
}

public struct ListenerTLS: Codable, Sendable, Equatable {
    public var certificateChain: String
    public var privateKey: String
    /// CA bundle; when set, clients must present a certificate it signed (mTLS).
    public var caCertificates: String?
    /// ALPN protocols offered, in preference order (default ["h2", "http/1.1"]).
    public var alpn: [String]?
}

/// A filter in a listener's chain: a registered name plus its own config.
public struct HTTPFilterConfig: Codable, Sendable, Equatable {
    public var name: String
    public var config: JSONValue?
}

public struct RouteConfig: Codable, Sendable, Equatable {
    public var name: String
    public var virtualHosts: [VirtualHost]
}

public struct VirtualHost: Codable, Sendable, Equatable {
    public var name: String
    /// Host names matched against :authority (port stripped). "*" matches any;
    /// "*.example.com" and "example.*" are wildcard forms as in Envoy.
    public var domains: [String]
    public var routes: [Route]
}

public struct Route: Codable, Sendable, Equatable {
    public var name: String?
    public var match: RouteMatch
    public var route: RouteAction?
    public var directResponse: DirectResponse?
    /// Per-route filter overrides, by filter name.
    public var perFilterConfig: [String: JSONValue]?
}

public struct RouteMatch: Codable, Sendable, Equatable {
    public var prefix: String?
    public var path: String?
    /// A regular expression the whole path (without query) must match.
    public var safeRegex: String?
    public var headers: [HeaderMatcher]?
    public var methods: [String]?
}

public struct HeaderMatcher: Codable, Sendable, Equatable {
    public var name: String
    public var exact: String?
    public var prefix: String?
    public var safeRegex: String?
    /// true: the header must be present; false: it must be absent.
    public var present: Bool?
    public var invert: Bool?
}

public struct RouteAction: Codable, Sendable, Equatable {
    public var cluster: String?
    public var weightedClusters: [WeightedCluster]?
    /// Whole-request timeout, from request end to response end (default 15000; 0 disables).
    public var timeoutMs: Int?
    public var prefixRewrite: String?
    public var hostRewrite: String?
}

public struct WeightedCluster: Codable, Sendable, Equatable {
    public var name: String
    public var weight: Int
}

public struct DirectResponse: Codable, Sendable, Equatable {
    public var status: Int
    public var body: String?
}

public struct Cluster: Codable, Sendable, Equatable {
    public enum UpstreamProtocol: String, Codable, Sendable { case http1 = "HTTP1", http2 = "HTTP2" }
    public enum LBPolicy: String, Codable, Sendable {
        case roundRobin = "ROUND_ROBIN", random = "RANDOM", leastRequest = "LEAST_REQUEST"
    }
    public var name: String
    public var `protocol`: UpstreamProtocol?
    public var lbPolicy: LBPolicy?
    public var connectTimeoutMs: Int?
    /// Keep-alive connections idle longer than this are closed (default 60000 ms).
    public var idleTimeoutMs: Int?
    /// Connections per endpoint per event loop (default 1024); beyond it requests queue.
    public var maxConnectionsPerEndpoint: Int?
    public var tls: UpstreamTLS?
    public var endpoints: [Endpoint]
}

public struct UpstreamTLS: Codable, Sendable, Equatable, Hashable {
    public var sni: String?
    public var caCertificates: String?
    public var insecureSkipVerify: Bool?
    public var certificateChain: String?
    public var privateKey: String?
}

public struct Endpoint: Codable, Sendable, Equatable, Hashable {
    public var address: String
    public var port: Int
    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }
}
