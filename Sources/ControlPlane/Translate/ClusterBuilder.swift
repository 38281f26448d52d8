import MeshAPI

/// Builds the outbound clusters a translation recorded: endpoints from the registry
/// (filtered by the subset's labels), load balancing, timeouts and TLS from the DestinationRule.
enum ClusterBuilder {
    static func build(_ ctx: TranslationContext) -> [Cluster] {
        ctx.clusterKeys.sorted().map { build($0, ctx) } + ctx.sniDnatKeys.sorted().map { sniDnat($0, ctx) }
    }

    /// Istio's SNI-DNAT cluster (an AUTO_PASSTHROUGH gateway's): the service cluster under its
    /// SNI name, carrying bytes as they come (no TLS of its own, no HTTP), to the endpoints
    /// with a mesh identity only, so a connection always lands on a sidecar's mTLS listener.
    static func sniDnat(_ key: ClusterKey, _ ctx: TranslationContext) -> Cluster {
        var cluster = build(key, ctx, sniDnat: true)
        cluster.name = key.sniName
        cluster.protocol = nil
        cluster.tls = nil
        return cluster
    }

    static func build(_ key: ClusterKey, _ ctx: TranslationContext, sniDnat: Bool = false) -> Cluster {
        let service = ctx.registry.service(host: key.host)
        let port = service?.port(key.port)
        let dr = ctx.index.destinationRule(for: key.host, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels)
        if let dr { ctx.use(dr.id) }
        if let service { ctx.use(service.source) }
        var subsetLabels: [String: String] = [:]
        var settings = dr?.spec.trafficPolicy?.settings(forPort: key.port) ?? PolicySettings()
        var subsetFound = key.subset.isEmpty
        if !key.subset.isEmpty, let subset = dr?.spec.subsets.first(where: { $0.name == key.subset }) {
            subsetFound = true
            subsetLabels = subset.labels
            if let tp = subset.trafficPolicy { settings = tp.settings(forPort: key.port).overriding(settings) }
        }
        var endpoints: [Endpoint] = []
        let visible = service.map { ctx.scope.visible(namespace: $0.namespace, host: $0.host, exportTo: $0.exportTo) } ?? false
        if let service, let port, subsetFound, visible {
            // Auto mTLS (Istio's default): sidecar endpoints get mutual TLS unless the
            // DestinationRule sets a TLS mode of its own (DISABLE included), or the endpoint's
            // PeerAuthentication is DISABLE (it would refuse TLS; Istio sends plaintext then).
            let autoMTLS = settings.tls?.mode == nil
            let network = NetworkGateway.network(nil, labels: ctx.proxy.labels)
            let all = ctx.registry.endpoints(of: service, port: port, subset: subsetLabels)
            // An SNI-DNAT cluster ends on its gateway's network: it never hops to another gateway.
            let reachable = sniDnat ? all.filter { $0.network == nil || $0.network == network }
                : ctx.registry.reachable(all, from: network)
            let found = reachable.compactMap { e -> (Endpoint, Locality?)? in
                if sniDnat { return e.meshIdentity == nil ? nil : (Endpoint(address: e.address, port: e.port), e.locality) }
                let mutual = autoMTLS && e.meshIdentity != nil
                    && PeerAuthenticationPolicy.mode(namespace: service.namespace, labels: e.labels, port: e.port,
                                                     store: ctx.store) != .disable
                return (Endpoint(address: e.address, port: e.port, meshIdentity: mutual ? e.meshIdentity : nil), e.locality)
            }
            endpoints = LocalityLoadBalancing.apply(settings.loadBalancer?.localityLbSetting,
                                                    outlierDetection: settings.outlierDetection != nil,
                                                    proxy: Locality.of(labels: ctx.proxy.labels), endpoints: found)
        }
        if service == nil {
            ctx.warn(key.name, "", "no service \(key.host) in the registry; the cluster has no endpoints")
        } else if port == nil {
            ctx.warn(key.name, "", "\(key.host) has no port \(key.port); the cluster has no endpoints")
        } else if !visible {
            ctx.warn(key.name, "", "\(key.host) is not visible to this proxy (exportTo or Sidecar egress); the cluster has no endpoints")
        } else if !subsetFound {
            ctx.warn(key.name, "", "no DestinationRule defines subset \"\(key.subset)\" for \(key.host); the cluster has no endpoints")
        }
        let source = dr?.id ?? key.name
        var h2 = port?.protocol.isHTTP2 ?? false
        if settings.connectionPool?.http?.h2UpgradePolicy == "UPGRADE" { h2 = true }
        let pool = settings.connectionPool
        warnUnenforced(settings, http2: h2, source, ctx)
        var cluster = Cluster(name: key.name, protocol: h2 ? .http2 : nil, lbPolicy: lbPolicy(settings.loadBalancer, source, ctx),
                       connectTimeoutMs: pool?.tcp?.connectTimeoutMs,
                       idleTimeoutMs: pool?.http?.idleTimeoutMs,
                       maxRetries: threshold(pool?.http?.maxRetries),
                       maxConnections: threshold(pool?.tcp?.maxConnections),
                       maxPendingRequests: threshold(pool?.http?.http1MaxPendingRequests),
                       maxRequests: threshold(pool?.http?.http2MaxRequests),
                       maxRequestsPerConnection: pool?.http?.maxRequestsPerConnection.flatMap { $0 > 0 ? $0 : nil },
                       tcpKeepalive: pool?.tcp?.tcpKeepalive.map(keepalive),
                       outlierDetection: settings.outlierDetection.map { outlier($0, source, ctx) },
                       consistentHash: settings.loadBalancer?.consistentHash.flatMap(consistentHash),
                       tls: tls(settings.tls, host: key.host, source, ctx,
                                credentialsApply: ctx.proxy.kind == .gateway || dr?.spec.workloadSelector != nil),
                       endpoints: endpoints)
        if cluster.lbPolicy == .roundRobin || cluster.lbPolicy == .leastRequest { cluster.slowStart = slowStart(settings.loadBalancer) }
        return cluster
    }

    /// Istio's `warmup` (or the older `warmupDurationSecs`) as Envoy's slow start.
    static func slowStart(_ lb: LoadBalancerSettings?) -> SlowStartConfig? {
        if let w = lb?.warmup, let ms = w.durationMs, ms > 0 {
            return SlowStartConfig(windowMs: ms, aggression: w.aggression, minWeightPercent: w.minimumPercent)
        }
        if let ms = lb?.warmupDurationSecsMs, ms > 0 { return SlowStartConfig(windowMs: ms) }
        return nil
    }

    /// Istio leaves every circuit breaker open by default (Envoy's thresholds at 2^32 − 1)
    /// and applies a DestinationRule's value only when it is positive.
    static let istioUnbounded = Int(UInt32.max)
    static let istioMaxRetries = istioUnbounded

    static func threshold(_ value: Int?) -> Int {
        if let value, value > 0 { return value }
        return istioUnbounded
    }

    /// Istio's TcpKeepalive; the socket takes whole seconds.
    static func keepalive(_ k: ConnectionPoolSettings.Keepalive) -> TCPKeepalive {
        TCPKeepalive(probes: k.probes, timeSeconds: k.timeMs.map { max(1, $0 / 1000) },
                     intervalSeconds: k.intervalMs.map { max(1, $0 / 1000) })
    }

    /// Istio's consistentHash: the key (header, cookie, source IP or query parameter; nil
    /// without one, which validation refuses) and the table size, `ringHash.minimumRingSize`
    /// before the deprecated top-level `minimumRingSize` (0 or unset: Envoy's 1024).
    static func consistentHash(_ h: LoadBalancerSettings.ConsistentHash) -> ConsistentHashConfig? {
        var out = ConsistentHashConfig()
        if let name = h.httpHeaderName { out.header = name }
        else if let c = h.httpCookie, let name = c.name, !name.isEmpty { out.cookie = .init(name: name, path: c.path, ttlMs: c.ttlMs) }
        else if h.useSourceIp == true { out.sourceIp = true }
        else if let q = h.httpQueryParameterName { out.queryParameter = q }
        else { return nil }
        if h.usesMaglev {
            out.maglevTableSize = h.maglevTableSize.flatMap { $0 > 0 ? $0 : nil }
        } else {
            out.minimumRingSize = (h.ringHashMinimumSize ?? h.minimumRingSize).flatMap { $0 > 0 ? $0 : nil }
        }
        return out
    }

    static func isPrime(_ n: Int) -> Bool {
        guard n > 3 else { return n > 1 }
        guard n % 2 != 0 else { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }

    /// Istio's OutlierDetection → Envoy's consecutive-errors detectors. Thresholds pass as
    /// set (0 turns one off); maxEjectionPercent only when positive (else Envoy's 10);
    /// minHealthPercent is the panic threshold (unset: 0, never).
    static func outlier(_ o: OutlierDetection, _ source: String, _ ctx: TranslationContext) -> OutlierDetectionConfig {
        if o.consecutiveErrors != nil {
            ctx.warn(source, "trafficPolicy.outlierDetection.consecutiveErrors",
                     "deprecated and not supported; use consecutive5xxErrors or consecutiveGatewayErrors")
        }
        return OutlierDetectionConfig(
            consecutive5xx: o.consecutive5xxErrors, consecutiveGatewayFailure: o.consecutiveGatewayErrors,
            consecutiveLocalOriginFailure: o.consecutiveLocalOriginFailures,
            splitExternalLocalOriginErrors: o.splitExternalLocalOriginErrors, intervalMs: o.intervalMs,
            baseEjectionTimeMs: o.baseEjectionTimeMs,
            maxEjectionPercent: o.maxEjectionPercent.flatMap { $0 > 0 ? $0 : nil },
            minHealthPercent: o.minHealthPercent ?? 0)
    }

    /// DestinationRule settings meshd parses but does not enforce: each is a warning, never
    /// silently accepted.
    static func warnUnenforced(_ s: PolicySettings, http2: Bool, _ source: String, _ ctx: TranslationContext) {
        let p = "trafficPolicy."
        if let http = s.connectionPool?.http {
            if http2, let n = http.maxRequestsPerConnection, n > 0 {
                ctx.warn(source, p + "connectionPool.http.maxRequestsPerConnection", "enforced on HTTP/1.1 only; HTTP/2 connections are reused without a request limit")
            }
            if http.maxConcurrentStreams != nil {
                ctx.warn(source, p + "connectionPool.http.maxConcurrentStreams", "not enforced yet; the upstream's SETTINGS_MAX_CONCURRENT_STREAMS applies")
            }
            if http.useClientProtocol == true {
                ctx.warn(source, p + "connectionPool.http.useClientProtocol", "not supported; the port's protocol is used")
            }
        }
        if let tcp = s.connectionPool?.tcp {
            if tcp.maxConnectionDurationMs != nil {
                ctx.warn(source, p + "connectionPool.tcp.maxConnectionDuration", "not enforced yet")
            }
            if tcp.idleTimeoutMs != nil {
                ctx.warn(source, p + "connectionPool.tcp.idleTimeout", "not enforced yet (TCP proxying); connectionPool.http.idleTimeout applies to HTTP")
            }
        }
        if let locality = s.loadBalancer?.localityLbSetting, !locality.failoverPriority.isEmpty {
            ctx.warn(source, p + "loadBalancer.localityLbSetting.failoverPriority",
                     "failover by label priority is not supported; failover follows region, zone and subzone")
        }
        if slowStart(s.loadBalancer) != nil, let simple = s.loadBalancer?.simple, !["ROUND_ROBIN", "LEAST_REQUEST", "UNSPECIFIED"].contains(simple) {
            ctx.warn(source, p + "loadBalancer.warmup", "warmup applies to ROUND_ROBIN and LEAST_REQUEST only (as in Envoy); ignored with \(simple)")
        }
    }

    /// Istio's default is LEAST_REQUEST, for UNSPECIFIED too. consistentHash: MAGLEV with
    /// `maglev`, else RING_HASH.
    static func lbPolicy(_ lb: LoadBalancerSettings?, _ source: String, _ ctx: TranslationContext) -> Cluster.LBPolicy {
        if let hash = lb?.consistentHash, consistentHash(hash) != nil { return hash.usesMaglev ? .maglev : .ringHash }
        switch lb?.simple {
        case "ROUND_ROBIN": return .roundRobin
        case "RANDOM": return .random
        case "PASSTHROUGH":
            ctx.warn(source, "trafficPolicy.loadBalancer.simple", "PASSTHROUGH is not supported; LEAST_REQUEST is used")
            return .leastRequest
        default: return .leastRequest
        }
    }

    /// - Parameter credentialsApply: whether `credentialName` is used: as in Istio, at gateways,
    ///   and at sidecars only for a DestinationRule with a `workloadSelector`.
    static func tls(_ tls: ClientTLSSettings?, host: String, _ source: String, _ ctx: TranslationContext,
                    credentialsApply: Bool = false) -> UpstreamTLS? {
        guard let tls else { return nil }
        if tls.caCrl != nil {
            ctx.warn(source, "trafficPolicy.tls.caCrl", "certificate revocation lists are not checked")
        }
        let sans = tls.subjectAltNames.isEmpty ? nil : tls.subjectAltNames
        switch tls.mode {
        case "SIMPLE", "MUTUAL":
            let mutual = tls.mode == "MUTUAL"
            var out = UpstreamTLS(sni: tls.sni ?? (host.hasPrefix("*") ? nil : host), caCertificates: tls.caCertificates,
                                  insecureSkipVerify: tls.insecureSkipVerify,
                                  certificateChain: mutual ? tls.clientCertificate : nil, privateKey: mutual ? tls.privateKey : nil,
                                  subjectAltNames: sans)
            if let name = tls.credentialName {
                guard credentialsApply else {
                    ctx.warn(source, "trafficPolicy.tls.credentialName",
                             "credentialName applies at gateways, and at sidecars only when the DestinationRule has a workloadSelector (as in Istio); this sidecar uses the certificate paths")
                    return out
                }
                return credentialTLS(out: &out, name: name, mutual: mutual, source, ctx)
            }
            return out
        case "ISTIO_MUTUAL":
            // The proxy's workload certificate; the peer is verified against the mesh root and
            // its SPIFFE ID (subjectAltNames, else the endpoint's registered identity).
            return UpstreamTLS(sni: tls.sni, istioMutual: true, subjectAltNames: sans)
        default:
            return nil
        }
    }

    /// The client certificate (MUTUAL) and the CA from the secret store: the CA of
    /// `<name>-cacert` when that secret exists, else of `<name>` (Istio's order). A secret that
    /// could not be read leaves the cluster without TLS material of its own: connections fail
    /// verification rather than go out without the client certificate.
    private static func credentialTLS(out: inout UpstreamTLS, name: String, mutual: Bool, _ source: String,
                                      _ ctx: TranslationContext) -> UpstreamTLS {
        let secret = ctx.store.credentials[name]
        out.caCertificates = nil
        out.certificateChain = nil
        out.privateKey = nil
        out.caCertificatesPEM = ctx.store.credentials[name + "-cacert"]?.caCertificates ?? secret?.caCertificates
        if mutual {
            guard let chain = secret?.certificateChain, let key = secret?.privateKey else {
                ctx.warn(source, "trafficPolicy.tls.credentialName",
                         "secret \"\(name)\" has no usable certificate (see the control plane's warnings); connections to this cluster fail")
                out.insecureSkipVerify = false
                out.caCertificatesPEM = out.caCertificatesPEM ?? ""
                return out
            }
            out.certificateChainPEM = chain
            out.privateKeyPEM = key
        }
        return out
    }
}
