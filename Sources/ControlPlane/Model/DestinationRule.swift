import MeshAPI

/// networking.istio.io DestinationRule.
public struct DestinationRule: NodeDecodable, Equatable {
    public var host: String?
    public var trafficPolicy: TrafficPolicy?
    public var subsets: [Subset]
    public var exportTo: [String]
    public var workloadSelector: LabelSelector?

    init(_ r: ObjectReader) {
        host = r.string("host")
        trafficPolicy = r.object("trafficPolicy")
        subsets = r.objects("subsets")
        exportTo = r.strings("exportTo")
        workloadSelector = r.object("workloadSelector")
    }
}

public struct Subset: NodeDecodable, Equatable {
    public var name: String?
    public var labels: [String: String]
    public var trafficPolicy: TrafficPolicy?

    init(_ r: ObjectReader) {
        name = r.string("name")
        labels = r.stringMap("labels")
        trafficPolicy = r.object("trafficPolicy")
    }
}

/// The fields a TrafficPolicy and a port-level policy share.
public struct PolicySettings: Equatable, Sendable {
    public var loadBalancer: LoadBalancerSettings?
    public var connectionPool: ConnectionPoolSettings?
    public var outlierDetection: OutlierDetection?
    public var tls: ClientTLSSettings?

    init(_ r: ObjectReader) {
        loadBalancer = r.object("loadBalancer")
        connectionPool = r.object("connectionPool")
        outlierDetection = r.object("outlierDetection")
        tls = r.object("tls")
    }

    init() {}

    /// Istio's merge: each field set here replaces the whole field of `base`.
    func overriding(_ base: PolicySettings) -> PolicySettings {
        var out = base
        if let loadBalancer { out.loadBalancer = loadBalancer }
        if let connectionPool { out.connectionPool = connectionPool }
        if let outlierDetection { out.outlierDetection = outlierDetection }
        if let tls { out.tls = tls }
        return out
    }
}

public struct TrafficPolicy: NodeDecodable, Equatable {
    public struct PortPolicy: NodeDecodable, Equatable {
        public var port: PortSelector?
        public var settings: PolicySettings

        init(_ r: ObjectReader) {
            port = r.object("port")
            settings = PolicySettings(r)
        }
    }

    public struct ProxyProtocol: NodeDecodable, Equatable {
        public var version: String?

        init(_ r: ObjectReader) {
            version = r.enumeration("version", ["V1", "V2"])
        }
    }

    public var settings: PolicySettings
    public var portLevelSettings: [PortPolicy]
    public var tunnel: JSONValue?
    public var proxyProtocol: ProxyProtocol?
    public var retryBudget: JSONValue?

    init(_ r: ObjectReader) {
        settings = PolicySettings(r)
        portLevelSettings = r.objects("portLevelSettings")
        tunnel = r.json("tunnel")
        proxyProtocol = r.object("proxyProtocol")
        retryBudget = r.json("retryBudget")
    }

    /// The settings for one port: the top-level ones, overridden by that port's entry.
    public func settings(forPort port: Int) -> PolicySettings {
        guard let p = portLevelSettings.first(where: { $0.port?.number == port }) else { return settings }
        return p.settings.overriding(settings)
    }
}

public struct LoadBalancerSettings: NodeDecodable, Equatable {
    public static let simpleNames = ["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"]

    public struct ConsistentHash: NodeDecodable, Equatable {
        public struct Cookie: NodeDecodable, Equatable {
            public var name: String?
            public var path: String?
            public var ttlMs: Int?

            init(_ r: ObjectReader) {
                name = r.string("name")
                path = r.string("path")
                ttlMs = r.durationMs("ttl")
            }
        }

        public var httpHeaderName: String?
        public var httpCookie: Cookie?
        public var useSourceIp: Bool?
        public var httpQueryParameterName: String?
        public var ringHashMinimumSize: Int?
        public var maglevTableSize: Int?
        /// `maglev` is set (else the ring hash is used).
        public var usesMaglev: Bool
        /// Deprecated top-level ring size (used when `ringHash` does not set one).
        public var minimumRingSize: Int?

        init(_ r: ObjectReader) {
            httpHeaderName = r.string("httpHeaderName")
            httpCookie = r.object("httpCookie")
            useSourceIp = r.bool("useSourceIp")
            httpQueryParameterName = r.string("httpQueryParameterName")
            ringHashMinimumSize = r.object("ringHash", as: RingHash.self)?.minimumRingSize
            let maglev = r.object("maglev", as: Maglev.self)
            maglevTableSize = maglev?.tableSize
            usesMaglev = maglev != nil
            minimumRingSize = r.int("minimumRingSize")
        }

        struct RingHash: NodeDecodable {
            var minimumRingSize: Int?
            init(_ r: ObjectReader) { minimumRingSize = r.int("minimumRingSize") }
        }

        struct Maglev: NodeDecodable {
            var tableSize: Int?
            init(_ r: ObjectReader) { tableSize = r.int("tableSize") }
        }
    }

    public var simple: String?
    public var consistentHash: ConsistentHash?
    public var localityLbSetting: LocalityLbSetting?
    public var zoneAwareLbSetting: JSONValue?
    public var warmupDurationSecsMs: Int?
    public var warmup: Warmup?

    /// Istio's `WarmupConfiguration`.
    public struct Warmup: NodeDecodable, Equatable {
        public var durationMs: Int?
        public var minimumPercent: Double?
        public var aggression: Double?
        init(_ r: ObjectReader) {
            durationMs = r.durationMs("duration")
            minimumPercent = r.double("minimumPercent")
            aggression = r.double("aggression")
        }
    }

    init(_ r: ObjectReader) {
        simple = r.enumeration("simple", Self.simpleNames)
        consistentHash = r.object("consistentHash")
        localityLbSetting = r.object("localityLbSetting")
        zoneAwareLbSetting = r.json("zoneAwareLbSetting")
        warmupDurationSecsMs = r.durationMs("warmupDurationSecs")
        warmup = r.object("warmup")
    }
}

public struct ConnectionPoolSettings: NodeDecodable, Equatable {
    public struct TCP: NodeDecodable, Equatable {
        public var maxConnections: Int?
        public var connectTimeoutMs: Int?
        public var tcpKeepalive: Keepalive?
        public var maxConnectionDurationMs: Int?
        public var idleTimeoutMs: Int?

        init(_ r: ObjectReader) {
            maxConnections = r.int("maxConnections")
            connectTimeoutMs = r.durationMs("connectTimeout")
            tcpKeepalive = r.object("tcpKeepalive")
            maxConnectionDurationMs = r.durationMs("maxConnectionDuration")
            idleTimeoutMs = r.durationMs("idleTimeout")
        }
    }

    public struct Keepalive: NodeDecodable, Equatable {
        public var probes: Int?
        public var timeMs: Int?
        public var intervalMs: Int?

        init(_ r: ObjectReader) {
            probes = r.int("probes")
            timeMs = r.durationMs("time")
            intervalMs = r.durationMs("interval")
        }
    }

    public struct HTTP: NodeDecodable, Equatable {
        public var http1MaxPendingRequests: Int?
        public var http2MaxRequests: Int?
        public var maxRequestsPerConnection: Int?
        public var maxRetries: Int?
        public var idleTimeoutMs: Int?
        public var h2UpgradePolicy: String?
        public var useClientProtocol: Bool?
        public var maxConcurrentStreams: Int?
        public var http2KeepAlive: JSONValue?

        init(_ r: ObjectReader) {
            http1MaxPendingRequests = r.int("http1MaxPendingRequests")
            http2MaxRequests = r.int("http2MaxRequests")
            maxRequestsPerConnection = r.int("maxRequestsPerConnection")
            maxRetries = r.int("maxRetries")
            idleTimeoutMs = r.durationMs("idleTimeout")
            h2UpgradePolicy = r.enumeration("h2UpgradePolicy", ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"])
            useClientProtocol = r.bool("useClientProtocol")
            maxConcurrentStreams = r.int("maxConcurrentStreams")
            http2KeepAlive = r.json("http2KeepAlive")
        }
    }

    public var tcp: TCP?
    public var http: HTTP?

    init(_ r: ObjectReader) {
        tcp = r.object("tcp")
        http = r.object("http")
    }
}

public struct OutlierDetection: NodeDecodable, Equatable {
    public var consecutiveErrors: Int?
    public var consecutive5xxErrors: Int?
    public var consecutiveGatewayErrors: Int?
    public var consecutiveLocalOriginFailures: Int?
    public var splitExternalLocalOriginErrors: Bool?
    public var intervalMs: Int?
    public var baseEjectionTimeMs: Int?
    public var maxEjectionPercent: Int?
    public var minHealthPercent: Int?
    public var outlierDetectionHttpErrorCodes: [Int]

    init(_ r: ObjectReader) {
        consecutiveErrors = r.int("consecutiveErrors")
        consecutive5xxErrors = r.int("consecutive5xxErrors")
        consecutiveGatewayErrors = r.int("consecutiveGatewayErrors")
        consecutiveLocalOriginFailures = r.int("consecutiveLocalOriginFailures")
        splitExternalLocalOriginErrors = r.bool("splitExternalLocalOriginErrors")
        intervalMs = r.durationMs("interval")
        baseEjectionTimeMs = r.durationMs("baseEjectionTime")
        maxEjectionPercent = r.int("maxEjectionPercent")
        minHealthPercent = r.int("minHealthPercent")
        outlierDetectionHttpErrorCodes = r.ints("outlierDetectionHttpErrorCodes")
    }
}

/// Upstream TLS: DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL.
public struct ClientTLSSettings: NodeDecodable, Equatable {
    public static let modes = ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]

    public var mode: String?
    public var clientCertificate: String?
    public var privateKey: String?
    public var caCertificates: String?
    public var credentialName: String?
    public var subjectAltNames: [String]
    public var sni: String?
    public var insecureSkipVerify: Bool?
    public var caCrl: String?

    init(_ r: ObjectReader) {
        mode = r.enumeration("mode", Self.modes)
        clientCertificate = r.string("clientCertificate")
        privateKey = r.string("privateKey")
        caCertificates = r.string("caCertificates")
        credentialName = r.string("credentialName")
        subjectAltNames = r.strings("subjectAltNames")
        sni = r.string("sni")
        insecureSkipVerify = r.bool("insecureSkipVerify")
        caCrl = r.string("caCrl")
    }
}

/// Istio's `LocalityLoadBalancerSetting`.
public struct LocalityLbSetting: NodeDecodable, Equatable {
    public struct Distribute: NodeDecodable, Equatable {
        public var from: String?
        public var to: [String: Int]
        init(_ r: ObjectReader) {
            from = r.string("from")
            to = r.intMap("to")
        }
    }

    public struct Failover: NodeDecodable, Equatable {
        public var from: String?
        public var to: String?
        init(_ r: ObjectReader) {
            from = r.string("from")
            to = r.string("to")
        }
    }

    public var distribute: [Distribute]
    public var failover: [Failover]
    public var failoverPriority: [String]
    public var enabled: Bool?

    init(_ r: ObjectReader) {
        distribute = r.objects("distribute")
        failover = r.objects("failover")
        failoverPriority = r.strings("failoverPriority")
        enabled = r.bool("enabled")
    }
}
