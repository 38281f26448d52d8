/// The proxy's static bootstrap and the resources the control plane pushes.
/// Field names follow Envoy's where one exists, in camelCase as in Istio's YAML.
public struct Bootstrap: Codable, Sendable, Equatable {
    public var admin: AdminConfig?
    public var listeners: [Listener]
    public var routeConfigs: [RouteConfig]
    public var clusters: [Cluster]
    /// Lua plugins, placed in each listener's chain after its `httpFilters`.
    public var luaPlugins: [LuaPlugin]
    /// Envoy's overload manager; nil: off.
    public var overloadManager: OverloadManagerConfig?
    /// Trace propagation, sampling and span export; read at start only. nil: off.
    public var tracing: TracingConfig?
    /// Access-log line encoding (Istio's `accessLogEncoding`, default TEXT); read at start only.
    public var accessLogEncoding: AccessLogEncoding?

    public init(admin: AdminConfig? = nil, listeners: [Listener] = [], routeConfigs: [RouteConfig] = [],
                clusters: [Cluster] = [], luaPlugins: [LuaPlugin] = [], overloadManager: OverloadManagerConfig? = nil,
                tracing: TracingConfig? = nil, accessLogEncoding: AccessLogEncoding? = nil) {
        self.admin = admin
        self.listeners = listeners
        self.routeConfigs = routeConfigs
        self.clusters = clusters
        self.luaPlugins = luaPlugins
        self.overloadManager = overloadManager
        self.tracing = tracing
        self.accessLogEncoding = accessLogEncoding
    }

    enum CodingKeys: String, CodingKey {
        case admin, listeners, routeConfigs, clusters, luaPlugins, overloadManager, tracing, accessLogEncoding
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        admin = try c.decodeIfPresent(AdminConfig.self, forKey: .admin)
        listeners = try c.decodeIfPresent([Listener].self, forKey: .listeners) ?? []
        routeConfigs = try c.decodeIfPresent([RouteConfig].self, forKey: .routeConfigs) ?? []
        clusters = try c.decodeIfPresent([Cluster].self, forKey: .clusters) ?? []
        luaPlugins = try c.decodeIfPresent([LuaPlugin].self, forKey: .luaPlugins) ?? []
        overloadManager = try c.decodeIfPresent(OverloadManagerConfig.self, forKey: .overloadManager)
        tracing = try c.decodeIfPresent(TracingConfig.self, forKey: .tracing)
        accessLogEncoding = try c.decodeIfPresent(AccessLogEncoding.self, forKey: .accessLogEncoding)
    }
}

public struct AdminConfig: Codable, Sendable, Equatable {
    public var address: String?
    public var port: Int?

    public init(address: String? = nil, port: Int? = nil) {
        self.address = address
        self.port = port
    }
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
    /// Connections open at once on this listener (Envoy's listener connection limit); one
    /// more is refused at accept. Default: no cap of its own, the process-wide one applies.
    public var maxConnections: Int?
    /// HTTP/2 flood limits, Envoy's `Http2ProtocolOptions` of the same names (defaults 100, 1, 10);
    /// past one the connection gets GOAWAY(ENHANCE_YOUR_CALM) and is closed.
    public var http2MaxInboundPriorityFramesPerStream: Int?
    public var http2MaxConsecutiveInboundFramesWithEmptyPayload: Int?
    public var http2MaxInboundWindowUpdateFramesPerDataFrameSent: Int?
    /// Envoy's `traffic_direction`: a sidecar's inbound listener makes SERVER spans, any
    /// other CLIENT spans.
    public var trafficDirection: TrafficDirection?
    /// Mesh mutual TLS with this proxy's workload certificate (a sidecar's inbound listener,
    /// from PeerAuthentication); nil: plaintext. Read at each accept, so a change needs no rebind.
    public var meshTLS: MeshTLSMode?

    public init(name: String, address: String, port: Int, tls: ListenerTLS? = nil, routeConfig: String,
                httpFilters: [HTTPFilterConfig]? = nil, idleTimeoutMs: Int? = nil, requestHeadersTimeoutMs: Int? = nil,
                maxRequestHeadersKb: Int? = nil, perConnectionBufferLimitBytes: Int? = nil,
                http2MaxResetsPerWindow: Int? = nil, accessLog: Bool? = nil, maxConnections: Int? = nil) {
        self.name = name
        self.address = address
        self.port = port
        self.tls = tls
        self.routeConfig = routeConfig
        self.httpFilters = httpFilters
        self.idleTimeoutMs = idleTimeoutMs
        self.requestHeadersTimeoutMs = requestHeadersTimeoutMs
        self.maxRequestHeadersKb = maxRequestHeadersKb
        self.perConnectionBufferLimitBytes = perConnectionBufferLimitBytes
        self.http2MaxResetsPerWindow = http2MaxResetsPerWindow
        self.accessLog = accessLog
        self.maxConnections = maxConnections
    }
}

/// PeerAuthentication's effective mode on an inbound listener (DISABLE is no `meshTLS`).
public enum MeshTLSMode: String, Codable, Sendable, Equatable {
    /// Only mutual TLS with a client certificate from the mesh root.
    case strict = "STRICT"
    /// Mutual TLS or plaintext, told apart by the first byte (a TLS handshake record is 0x16).
    case permissive = "PERMISSIVE"
}

public struct ListenerTLS: Codable, Sendable, Equatable {
    public var certificateChain: String
    public var privateKey: String
    /// CA bundle; when set, clients must present a certificate it signed (mTLS).
    public var caCertificates: String?
    /// ALPN protocols offered, in preference order (default ["h2", "http/1.1"]).
    public var alpn: [String]?

    public init(certificateChain: String, privateKey: String, caCertificates: String? = nil, alpn: [String]? = nil) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.caCertificates = caCertificates
        self.alpn = alpn
    }
}

/// A filter in a listener's chain: a registered name plus its own config.
public struct HTTPFilterConfig: Codable, Sendable, Equatable {
    public var name: String
    public var config: JSONValue?

    public init(name: String, config: JSONValue? = nil) {
        self.name = name
        self.config = config
    }
}

public struct RouteConfig: Codable, Sendable, Equatable {
    public var name: String
    public var virtualHosts: [VirtualHost]

    public init(name: String, virtualHosts: [VirtualHost]) {
        self.name = name
        self.virtualHosts = virtualHosts
    }
}

public struct VirtualHost: Codable, Sendable, Equatable {
    public var name: String
    /// Host names matched against :authority (port stripped). "*" matches any;
    /// "*.example.com" and "example.*" are wildcard forms as in Envoy. A domain with a port
    /// ("reviews:9080") matches only an authority with that port, ahead of any other form.
    public var domains: [String]
    public var routes: [Route]
    /// Filter overrides for every route of this host, by filter name; a route's own entry wins.
    public var perFilterConfig: [String: JSONValue]?
    /// Send `x-envoy-attempt-count` (1 for the first try, 2 for the first retry…) upstream
    /// (Envoy's `include_request_attempt_count`; Istio sets it on every virtual host).
    public var includeRequestAttemptCount: Bool?

    public init(name: String, domains: [String], routes: [Route], perFilterConfig: [String: JSONValue]? = nil,
                includeRequestAttemptCount: Bool? = nil) {
        self.name = name
        self.domains = domains
        self.routes = routes
        self.perFilterConfig = perFilterConfig
        self.includeRequestAttemptCount = includeRequestAttemptCount
    }
}

public struct Route: Codable, Sendable, Equatable {
    public var name: String?
    public var match: RouteMatch
    public var route: RouteAction?
    public var directResponse: DirectResponse?
    /// Answer with a redirect (`location`) instead of forwarding.
    public var redirect: RedirectAction?
    /// Header changes the router applies: `request` before sending upstream, `response`
    /// to the upstream response head (and to this route's redirect or direct response).
    public var headers: HeaderOperations?
    /// Per-route filter overrides, by filter name.
    public var perFilterConfig: [String: JSONValue]?

    public init(name: String? = nil, match: RouteMatch, route: RouteAction? = nil, directResponse: DirectResponse? = nil,
                redirect: RedirectAction? = nil, headers: HeaderOperations? = nil,
                perFilterConfig: [String: JSONValue]? = nil) {
        self.name = name
        self.match = match
        self.route = route
        self.directResponse = directResponse
        self.redirect = redirect
        self.headers = headers
        self.perFilterConfig = perFilterConfig
    }
}

public struct RouteMatch: Codable, Sendable, Equatable {
    public var prefix: String?
    public var path: String?
    /// A regular expression the whole path (without query) must match.
    public var safeRegex: String?
    /// Header matchers; the pseudo-headers `:authority` and `:method` match the request's
    /// authority (as sent, port included) and method.
    public var headers: [HeaderMatcher]?
    public var methods: [String]?
    /// Query parameters (percent-decoded); all must match.
    public var queryParams: [QueryParameterMatcher]?

    public init(prefix: String? = nil, path: String? = nil, safeRegex: String? = nil, headers: [HeaderMatcher]? = nil,
                methods: [String]? = nil, queryParams: [QueryParameterMatcher]? = nil) {
        self.prefix = prefix
        self.path = path
        self.safeRegex = safeRegex
        self.headers = headers
        self.methods = methods
        self.queryParams = queryParams
    }
}

public struct HeaderMatcher: Codable, Sendable, Equatable {
    public var name: String
    public var exact: String?
    public var prefix: String?
    public var safeRegex: String?
    /// true: the header must be present; false: it must be absent.
    public var present: Bool?
    public var invert: Bool?

    public init(name: String, exact: String? = nil, prefix: String? = nil, safeRegex: String? = nil,
                present: Bool? = nil, invert: Bool? = nil) {
        self.name = name
        self.exact = exact
        self.prefix = prefix
        self.safeRegex = safeRegex
        self.present = present
        self.invert = invert
    }
}

public struct RouteAction: Codable, Sendable, Equatable {
    public var cluster: String?
    public var weightedClusters: [WeightedCluster]?
    /// Whole-request timeout, from request end to response end (default 15000; 0 disables).
    public var timeoutMs: Int?
    public var prefixRewrite: String?
    /// Replaces the whole path (the query string is kept unless the rewrite has its own).
    public var pathRewrite: String?
    public var hostRewrite: String?
    /// Retries of a failed attempt; none when unset.
    public var retryPolicy: RetryPolicy?
    /// Copies of the request sent to other clusters, fire and forget.
    public var requestMirrorPolicies: [MirrorPolicy]?

    public init(cluster: String? = nil, weightedClusters: [WeightedCluster]? = nil, timeoutMs: Int? = nil,
                prefixRewrite: String? = nil, pathRewrite: String? = nil, hostRewrite: String? = nil,
                retryPolicy: RetryPolicy? = nil, requestMirrorPolicies: [MirrorPolicy]? = nil) {
        self.cluster = cluster
        self.weightedClusters = weightedClusters
        self.timeoutMs = timeoutMs
        self.prefixRewrite = prefixRewrite
        self.pathRewrite = pathRewrite
        self.hostRewrite = hostRewrite
        self.retryPolicy = retryPolicy
        self.requestMirrorPolicies = requestMirrorPolicies
    }
}

public struct WeightedCluster: Codable, Sendable, Equatable {
    public var name: String
    public var weight: Int

    public init(name: String, weight: Int) {
        self.name = name
        self.weight = weight
    }
}

public struct DirectResponse: Codable, Sendable, Equatable {
    public var status: Int
    public var body: String?

    public init(status: Int, body: String? = nil) {
        self.status = status
        self.body = body
    }
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
    /// Retries outstanding at once across the cluster, all loops (Envoy's `max_retries`
    /// circuit breaker, default 3); a retry over it is not made (flag UO).
    public var maxRetries: Int?
    public var tls: UpstreamTLS?
    public var endpoints: [Endpoint]

    public init(name: String, protocol: UpstreamProtocol? = nil, lbPolicy: LBPolicy? = nil, connectTimeoutMs: Int? = nil,
                idleTimeoutMs: Int? = nil, maxConnectionsPerEndpoint: Int? = nil, maxRetries: Int? = nil,
                tls: UpstreamTLS? = nil, endpoints: [Endpoint]) {
        self.name = name
        self.protocol = `protocol`
        self.lbPolicy = lbPolicy
        self.connectTimeoutMs = connectTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
        self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
        self.maxRetries = maxRetries
        self.tls = tls
        self.endpoints = endpoints
    }
}

public struct UpstreamTLS: Codable, Sendable, Equatable, Hashable {
    public var sni: String?
    public var caCertificates: String?
    public var insecureSkipVerify: Bool?
    public var certificateChain: String?
    public var privateKey: String?
    /// ISTIO_MUTUAL: this proxy's workload certificate, peers verified against the mesh root.
    public var istioMutual: Bool?
    /// The peer's certificate must carry one of these SANs (URI or DNS), e.g. a SPIFFE ID.
    public var subjectAltNames: [String]?

    public init(sni: String? = nil, caCertificates: String? = nil, insecureSkipVerify: Bool? = nil,
                certificateChain: String? = nil, privateKey: String? = nil, istioMutual: Bool? = nil,
                subjectAltNames: [String]? = nil) {
        self.sni = sni
        self.caCertificates = caCertificates
        self.insecureSkipVerify = insecureSkipVerify
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.istioMutual = istioMutual
        self.subjectAltNames = subjectAltNames
    }
}

public struct Endpoint: Codable, Sendable, Equatable, Hashable {
    public var address: String
    public var port: Int
    /// Set when the endpoint is a sidecar with a mesh certificate (Istio's auto mTLS): the
    /// SPIFFE ID it must present. The proxy then uses mutual TLS to it unless the cluster
    /// has TLS settings of its own.
    public var meshIdentity: String?

    public init(address: String, port: Int, meshIdentity: String? = nil) {
        self.address = address
        self.port = port
        self.meshIdentity = meshIdentity
    }
}
