#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// Access log and tracing from the mesh config and Telemetry resources, applied on every
    /// swap. nil: the proxy's start settings (flags, `tracing`, `accessLogEncoding`) alone.
    public var telemetry: ProxyTelemetry?

    public init(admin: AdminConfig? = nil, listeners: [Listener] = [], routeConfigs: [RouteConfig] = [],
                clusters: [Cluster] = [], luaPlugins: [LuaPlugin] = [], overloadManager: OverloadManagerConfig? = nil,
                tracing: TracingConfig? = nil, accessLogEncoding: AccessLogEncoding? = nil,
                telemetry: ProxyTelemetry? = nil) {
        self.admin = admin
        self.listeners = listeners
        self.routeConfigs = routeConfigs
        self.clusters = clusters
        self.luaPlugins = luaPlugins
        self.overloadManager = overloadManager
        self.tracing = tracing
        self.accessLogEncoding = accessLogEncoding
        self.telemetry = telemetry
    }

    enum CodingKeys: String, CodingKey {
        case admin, listeners, routeConfigs, clusters, luaPlugins, overloadManager, tracing, accessLogEncoding, telemetry
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
        telemetry = try c.decodeIfPresent(ProxyTelemetry.self, forKey: .telemetry)
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
    /// TLS chosen per connection by the client's SNI (Envoy's filter chains matched on
    /// `server_names`): the most specific entry's `serverNames` wins (exact, then the longest
    /// `*.suffix`, then an entry without names); none matching: the handshake is refused.
    /// Used instead of `tls`. Contexts are taken at each accept, so a change needs no rebind.
    public var tlsByServerName: [ListenerTLS]?
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
    /// Set: the listener proxies raw bytes (no `tls`; `meshTLS` may terminate mesh mTLS
    /// first). With an empty `routeConfig` it carries bytes only and the HTTP fields are
    /// unused; with a `routeConfig` too, each connection is HTTP or bytes as its start says
    /// (Istio's protocol sniffing: after mesh TLS its ALPN, Istio's TCP names meaning bytes;
    /// in cleartext an HTTP/1 request line or the HTTP/2 preface meaning HTTP, anything else
    /// bytes, and silence for `requestHeadersTimeoutMs` bytes too).
    public var tcpProxy: TCPProxy?

    public init(name: String, address: String, port: Int, tls: ListenerTLS? = nil, routeConfig: String,
                httpFilters: [HTTPFilterConfig]? = nil, idleTimeoutMs: Int? = nil, requestHeadersTimeoutMs: Int? = nil,
                maxRequestHeadersKb: Int? = nil, perConnectionBufferLimitBytes: Int? = nil,
                http2MaxResetsPerWindow: Int? = nil, accessLog: Bool? = nil, maxConnections: Int? = nil,
                tcpProxy: TCPProxy? = nil) {
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
        self.tcpProxy = tcpProxy
    }

    /// The TLS entries this listener terminates with (`tlsByServerName`, else `tls`).
    public var serverTLS: [ListenerTLS] { tlsByServerName ?? tls.map { [$0] } ?? [] }
}

/// PeerAuthentication's effective mode on an inbound listener (DISABLE is no `meshTLS`).
public enum MeshTLSMode: String, Codable, Sendable, Equatable {
    /// Only mutual TLS with a client certificate from the mesh root.
    case strict = "STRICT"
    /// Mutual TLS or plaintext, told apart by the first byte (a TLS handshake record is 0x16).
    case permissive = "PERMISSIVE"
}

/// A listener's TLS termination (one of Envoy's filter chains' `DownstreamTlsContext`).
/// Certificates come as files (a static bootstrap) or as PEM text (what the control plane
/// pushes from its secret store); every field but the certificate is optional.
public struct ListenerTLS: Codable, Sendable, Equatable {
    /// Files: the certificate chain and its key (PEM).
    public var certificateChain: String?
    public var privateKey: String?
    /// CA bundle file; when set (or `caCertificatesPEM`), clients are asked for a certificate
    /// it signed (mTLS).
    public var caCertificates: String?
    /// PEM text: up to two certificates (one RSA and one ECDSA, OpenSSL serves the one the
    /// client supports), used instead of the files.
    public var certificates: [CertificatePEM]?
    public var caCertificatesPEM: String?
    /// ALPN protocols offered, in preference order (default ["h2", "http/1.1"]).
    public var alpn: [String]?
    /// The SNI names this entry serves in `Listener.tlsByServerName` (Envoy's filter chain
    /// `server_names`): exact names or `*.suffix`; nil or empty: any name, and no SNI at all.
    public var serverNames: [String]?
    /// With a CA: false lets a client in without a certificate (Istio's OPTIONAL_MUTUAL); a
    /// certificate it does present must verify. Default true (MUTUAL).
    public var requireClientCertificate: Bool?
    /// The client certificate must carry one of these SANs (URI or DNS), exactly.
    public var subjectAltNames: [String]?
    /// The client certificate's SubjectPublicKeyInfo SHA-256 (base64) or the certificate's
    /// SHA-256 (hex, colons allowed) must be one of these (either list matching is enough).
    public var verifyCertificateSpki: [String]?
    public var verifyCertificateHash: [String]?
    /// Protocol range (default TLS 1.2 up to TLS 1.3).
    public var minProtocolVersion: TLSProtocolVersion?
    public var maxProtocolVersion: TLSProtocolVersion?
    /// OpenSSL cipher names for TLS 1.2 and lower (TLS 1.3 suites are not configurable, as in Envoy).
    public var cipherSuites: [String]?

    public init(certificateChain: String? = nil, privateKey: String? = nil, caCertificates: String? = nil,
                alpn: [String]? = nil, certificates: [CertificatePEM]? = nil, caCertificatesPEM: String? = nil) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.caCertificates = caCertificates
        self.alpn = alpn
        self.certificates = certificates
        self.caCertificatesPEM = caCertificatesPEM
    }
}

/// A certificate chain and its private key, as PEM text.
public struct CertificatePEM: Codable, Sendable, Equatable, Hashable {
    public var certificateChain: String
    public var privateKey: String

    public init(certificateChain: String, privateKey: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
}

/// Istio's TLS protocol version names.
public enum TLSProtocolVersion: String, Codable, Sendable, Equatable, Hashable, CaseIterable {
    case tls10 = "TLSV1_0", tls11 = "TLSV1_1", tls12 = "TLSV1_2", tls13 = "TLSV1_3"
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
    /// Envoy's `regex_rewrite`: every match of `pattern` in the path (not the query) replaced.
    public var regexRewrite: RegexRewrite?
    /// Retries of a failed attempt; none when unset.
    public var retryPolicy: RetryPolicy?
    /// Copies of the request sent to other clusters, fire and forget.
    public var requestMirrorPolicies: [MirrorPolicy]?

    public init(cluster: String? = nil, weightedClusters: [WeightedCluster]? = nil, timeoutMs: Int? = nil,
                prefixRewrite: String? = nil, pathRewrite: String? = nil, hostRewrite: String? = nil,
                regexRewrite: RegexRewrite? = nil, retryPolicy: RetryPolicy? = nil,
                requestMirrorPolicies: [MirrorPolicy]? = nil) {
        self.cluster = cluster
        self.weightedClusters = weightedClusters
        self.timeoutMs = timeoutMs
        self.prefixRewrite = prefixRewrite
        self.pathRewrite = pathRewrite
        self.hostRewrite = hostRewrite
        self.regexRewrite = regexRewrite
        self.retryPolicy = retryPolicy
        self.requestMirrorPolicies = requestMirrorPolicies
    }
}

/// Envoy's `RegexMatchAndSubstitute`: RE2 `pattern`, and `substitution` where `\1` is group 1.
public struct RegexRewrite: Codable, Sendable, Equatable {
    public var pattern: String
    public var substitution: String

    public init(pattern: String, substitution: String) {
        self.pattern = pattern
        self.substitution = substitution
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
        /// Consistent hashing by `consistentHash`'s key (a request without one: random).
        case ringHash = "RING_HASH", maglev = "MAGLEV"
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
    /// Envoy's circuit breakers, each counted across the cluster and all loops (default 1024
    /// each). Connections over `maxConnections` are not opened (requests wait for one);
    /// requests over `maxPendingRequests` waiting or `maxRequests` in flight are answered
    /// 503 with flag UO and `x-envoy-overloaded: true`.
    public var maxConnections: Int?
    public var maxPendingRequests: Int?
    public var maxRequests: Int?
    /// HTTP/1.1: a connection is closed after carrying this many requests; nil or 0: no limit.
    public var maxRequestsPerConnection: Int?
    /// TCP keepalive on upstream sockets; nil: off.
    public var tcpKeepalive: TCPKeepalive?
    /// RING_HASH / MAGLEV: what a request is hashed by, and the table size.
    public var consistentHash: ConsistentHashConfig?
    /// Envoy's consecutive-errors outlier detection; nil: off.
    public var outlierDetection: OutlierDetectionConfig?
    public var tls: UpstreamTLS?
    /// Envoy's slow start (Istio's `warmup`): ROUND_ROBIN and LEAST_REQUEST only.
    public var slowStart: SlowStartConfig?
    /// Envoy's ORIGINAL_DST cluster with the host taken from the request: each request goes to
    /// its own `:authority` (host, port 80 when absent), not to `endpoints` (Istio's PassthroughCluster).
    public var originalDestination: Bool?
    public var endpoints: [Endpoint]

    public init(name: String, protocol: UpstreamProtocol? = nil, lbPolicy: LBPolicy? = nil, connectTimeoutMs: Int? = nil,
                idleTimeoutMs: Int? = nil, maxConnectionsPerEndpoint: Int? = nil, maxRetries: Int? = nil,
                maxConnections: Int? = nil, maxPendingRequests: Int? = nil, maxRequests: Int? = nil,
                maxRequestsPerConnection: Int? = nil, tcpKeepalive: TCPKeepalive? = nil,
                outlierDetection: OutlierDetectionConfig? = nil, consistentHash: ConsistentHashConfig? = nil, tls: UpstreamTLS? = nil, endpoints: [Endpoint]) {
        self.name = name
        self.protocol = `protocol`
        self.lbPolicy = lbPolicy
        self.connectTimeoutMs = connectTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
        self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
        self.maxRetries = maxRetries
        self.maxConnections = maxConnections
        self.maxPendingRequests = maxPendingRequests
        self.maxRequests = maxRequests
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.tcpKeepalive = tcpKeepalive
        self.outlierDetection = outlierDetection
        self.consistentHash = consistentHash
        self.tls = tls
        self.endpoints = endpoints
    }
}

/// Envoy's `SlowStartConfig`: an endpoint new to the proxy gets a share that grows over
/// `windowMs`, from `minWeightPercent` up, as (elapsed / window)^(1 / aggression).
public struct SlowStartConfig: Codable, Sendable, Equatable {
    public var windowMs: Int
    public var aggression: Double?
    public var minWeightPercent: Double?

    public init(windowMs: Int, aggression: Double? = nil, minWeightPercent: Double? = nil) {
        self.windowMs = windowMs
        self.aggression = aggression
        self.minWeightPercent = minWeightPercent
    }

    /// The weight factor (0…1] of an endpoint first used `elapsedMs` ago.
    public func factor(elapsedMs: Int) -> Double {
        guard windowMs > 0, elapsedMs < windowMs else { return 1 }
        let time = max(0, Double(elapsedMs)) / Double(windowMs)
        let aggression = (aggression ?? 1) > 0 ? (aggression ?? 1) : 1
        return max((minWeightPercent ?? 10) / 100, min(1, time == 0 ? 0 : pow(time, 1 / aggression)))
    }
}

/// The hash key of a consistent-hash cluster (one of header, cookie, sourceIp,
/// queryParameter) and its table size. Hashes are xxHash64, as Envoy's.
public struct ConsistentHashConfig: Codable, Sendable, Equatable {
    public struct Cookie: Codable, Sendable, Equatable {
        public var name: String
        public var path: String?
        /// When set and the request has no such cookie, one is generated and sent back with
        /// Set-Cookie (Max-Age when positive).
        public var ttlMs: Int?
        public init(name: String, path: String? = nil, ttlMs: Int? = nil) {
            self.name = name
            self.path = path
            self.ttlMs = ttlMs
        }
    }

    public var header: String?
    public var cookie: Cookie?
    /// The downstream connection's IP address.
    public var sourceIp: Bool?
    public var queryParameter: String?
    /// RING_HASH: points on the ring at least (default 1024, at most 8388608).
    public var minimumRingSize: Int?
    /// MAGLEV: lookup table size, a prime (default 65537).
    public var maglevTableSize: Int?

    public init(header: String? = nil, cookie: Cookie? = nil, sourceIp: Bool? = nil, queryParameter: String? = nil,
                minimumRingSize: Int? = nil, maglevTableSize: Int? = nil) {
        self.header = header
        self.cookie = cookie
        self.sourceIp = sourceIp
        self.queryParameter = queryParameter
        self.minimumRingSize = minimumRingSize
        self.maglevTableSize = maglevTableSize
    }
}

/// Envoy's outlier detection, the consecutive-errors detectors (no success-rate ones).
public struct OutlierDetectionConfig: Codable, Sendable, Equatable {
    /// 5xx answers in a row (and, unless split, local-origin failures) that eject a host
    /// (default 5; 0: off).
    public var consecutive5xx: Int?
    /// 502/503/504 in a row (and, unless split, local-origin failures); nil or 0: off.
    public var consecutiveGatewayFailure: Int?
    /// With `splitExternalLocalOriginErrors`: connect failures, resets in a row (default 5; 0: off).
    public var consecutiveLocalOriginFailure: Int?
    /// Counts local-origin failures apart from the upstream's answers (default false).
    public var splitExternalLocalOriginErrors: Bool?
    /// Between sweeps that bring ejected hosts back (default 10000 ms).
    public var intervalMs: Int?
    /// A host is ejected for this × the times it was ejected (default 30000 ms) ...
    public var baseEjectionTimeMs: Int?
    /// ... at most this long, or the base time when longer (default 300000 ms).
    public var maxEjectionTimeMs: Int?
    /// No ejection while this share of the hosts is ejected already (default 10).
    public var maxEjectionPercent: Int?
    /// Below this share of healthy hosts, ejected ones are used too (Envoy's panic threshold;
    /// default 0: never).
    public var minHealthPercent: Int?

    public init(consecutive5xx: Int? = nil, consecutiveGatewayFailure: Int? = nil, consecutiveLocalOriginFailure: Int? = nil,
                splitExternalLocalOriginErrors: Bool? = nil, intervalMs: Int? = nil, baseEjectionTimeMs: Int? = nil,
                maxEjectionTimeMs: Int? = nil, maxEjectionPercent: Int? = nil, minHealthPercent: Int? = nil) {
        self.consecutive5xx = consecutive5xx
        self.consecutiveGatewayFailure = consecutiveGatewayFailure
        self.consecutiveLocalOriginFailure = consecutiveLocalOriginFailure
        self.splitExternalLocalOriginErrors = splitExternalLocalOriginErrors
        self.intervalMs = intervalMs
        self.baseEjectionTimeMs = baseEjectionTimeMs
        self.maxEjectionTimeMs = maxEjectionTimeMs
        self.maxEjectionPercent = maxEjectionPercent
        self.minHealthPercent = minHealthPercent
    }
}

/// SO_KEEPALIVE on upstream sockets; unset fields keep the kernel's values.
public struct TCPKeepalive: Codable, Sendable, Equatable {
    /// Unanswered probes before the connection is dropped (TCP_KEEPCNT).
    public var probes: Int?
    /// Idle time before the first probe, in seconds (TCP_KEEPIDLE).
    public var timeSeconds: Int?
    /// Between probes, in seconds (TCP_KEEPINTVL).
    public var intervalSeconds: Int?

    public init(probes: Int? = nil, timeSeconds: Int? = nil, intervalSeconds: Int? = nil) {
        self.probes = probes
        self.timeSeconds = timeSeconds
        self.intervalSeconds = intervalSeconds
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
    /// The same as `certificateChain`, `privateKey` and `caCertificates`, as PEM text (what the
    /// control plane pushes from its secret store); a file and its PEM form do not go together.
    public var certificateChainPEM: String?
    public var privateKeyPEM: String?
    public var caCertificatesPEM: String?

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
    /// Envoy's priority level (0 first): traffic moves to the next level as this one's
    /// endpoints are ejected (Istio's locality failover). nil: 0.
    public var priority: Int?
    /// Share of traffic within its priority (Istio's locality `distribute`); nil: equal shares.
    public var weight: Int?

    public init(address: String, port: Int, meshIdentity: String? = nil, priority: Int? = nil, weight: Int? = nil) {
        self.address = address
        self.port = port
        self.meshIdentity = meshIdentity
        self.priority = priority
        self.weight = weight
    }
}

extension Bootstrap {
    /// The same config with private keys given as PEM text replaced by "[redacted]" (as Envoy's
    /// config dump shows secrets): what debug pages show.
    public var redactingPrivateKeys: Bootstrap {
        var b = self
        func redact(_ tls: inout ListenerTLS) {
            tls.certificates = tls.certificates?.map { CertificatePEM(certificateChain: $0.certificateChain, privateKey: "[redacted]") }
        }
        for i in b.listeners.indices {
            if b.listeners[i].tls != nil { redact(&b.listeners[i].tls!) }
            if let entries = b.listeners[i].tlsByServerName {
                b.listeners[i].tlsByServerName = entries.map { var e = $0; redact(&e); return e }
            }
        }
        for i in b.clusters.indices where b.clusters[i].tls?.privateKeyPEM != nil {
            b.clusters[i].tls?.privateKeyPEM = "[redacted]"
        }
        return b
    }
}
