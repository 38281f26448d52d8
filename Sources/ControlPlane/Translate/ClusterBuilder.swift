import MeshAPI

/// Builds the outbound clusters a translation recorded: endpoints from the registry
/// (filtered by the subset's labels), load balancing, timeouts and TLS from the DestinationRule.
enum ClusterBuilder {
    static func build(_ ctx: TranslationContext) -> [Cluster] {
        ctx.clusterKeys.sorted().map { build($0, ctx) }
    }

    static func build(_ key: ClusterKey, _ ctx: TranslationContext) -> Cluster {
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
            // DestinationRule sets a TLS mode of its own (DISABLE included).
            let autoMTLS = settings.tls?.mode == nil
            endpoints = ctx.registry.endpoints(of: service, port: port, subset: subsetLabels).map {
                Endpoint(address: $0.address, port: $0.port, meshIdentity: autoMTLS ? $0.meshIdentity : nil)
            }
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
        return Cluster(name: key.name, protocol: h2 ? .http2 : nil, lbPolicy: lbPolicy(settings.loadBalancer, source, ctx),
                       connectTimeoutMs: settings.connectionPool?.tcp?.connectTimeoutMs,
                       idleTimeoutMs: settings.connectionPool?.http?.idleTimeoutMs,
                       maxRetries: settings.connectionPool?.http?.maxRetries ?? istioMaxRetries,
                       tls: tls(settings.tls, host: key.host, source, ctx), endpoints: endpoints)
    }

    /// Istio leaves retries unbounded by default (Envoy's circuit breaker at 2^32 − 1).
    static let istioMaxRetries = Int(UInt32.max)

    /// Istio's default is LEAST_REQUEST, for UNSPECIFIED too.
    static func lbPolicy(_ lb: LoadBalancerSettings?, _ source: String, _ ctx: TranslationContext) -> Cluster.LBPolicy {
        if lb?.consistentHash != nil {
            ctx.warn(source, "trafficPolicy.loadBalancer.consistentHash", "consistent hashing is not supported yet; LEAST_REQUEST is used")
        }
        switch lb?.simple {
        case "ROUND_ROBIN": return .roundRobin
        case "RANDOM": return .random
        case "PASSTHROUGH":
            ctx.warn(source, "trafficPolicy.loadBalancer.simple", "PASSTHROUGH is not supported; LEAST_REQUEST is used")
            return .leastRequest
        default: return .leastRequest
        }
    }

    static func tls(_ tls: ClientTLSSettings?, host: String, _ source: String, _ ctx: TranslationContext) -> UpstreamTLS? {
        guard let tls else { return nil }
        if tls.caCrl != nil {
            ctx.warn(source, "trafficPolicy.tls.caCrl", "certificate revocation lists are not checked")
        }
        let sans = tls.subjectAltNames.isEmpty ? nil : tls.subjectAltNames
        switch tls.mode {
        case "SIMPLE", "MUTUAL":
            if tls.credentialName != nil {
                ctx.warn(source, "trafficPolicy.tls.credentialName", "credentialName needs a secret store, which meshd does not have; use file paths")
            }
            let mutual = tls.mode == "MUTUAL"
            return UpstreamTLS(sni: tls.sni ?? (host.hasPrefix("*") ? nil : host), caCertificates: tls.caCertificates,
                               insecureSkipVerify: tls.insecureSkipVerify,
                               certificateChain: mutual ? tls.clientCertificate : nil, privateKey: mutual ? tls.privateKey : nil,
                               subjectAltNames: sans)
        case "ISTIO_MUTUAL":
            // The proxy's workload certificate; the peer is verified against the mesh root and
            // its SPIFFE ID (subjectAltNames, else the endpoint's registered identity).
            return UpstreamTLS(sni: tls.sni, istioMutual: true, subjectAltNames: sans)
        default:
            return nil
        }
    }
}
