/// Which accepted fields meshd enforces, per kind, so that none is ignored silently: every
/// field present in a resource that is not enforced is a warning naming its line, its path and
/// what meshd does instead. A field covers its whole subtree (`spec.http[].fault` covers
/// `spec.http[].fault.delay.fixedDelay`); the most specific entry wins; a field no entry covers
/// is "not enforced". docs/control-plane.md lists the same tables — keep both true.
enum FieldSupport {
    enum Support: Equatable {
        case enforced
        /// Accepted, not enforced: what meshd does instead.
        case warned(String)
    }

    static let notEnforced = "not enforced by meshd; ignored"

    /// Kinds meshd keeps but does not enforce at all: one warning for the whole spec.
    static func kindNote(_ kind: ResourceKind) -> String? {
        switch kind {
        case .workloadGroup:
            "WorkloadGroup is not used by meshd: workloads register by connecting (meshd sidecar) or as WorkloadEntries"
        default: nil
        }
    }

    static func table(_ kind: ResourceKind) -> [String: Support] {
        switch kind {
        case .virtualService: virtualService
        case .destinationRule: destinationRule
        case .gateway: gateway
        case .serviceEntry: serviceEntry
        case .workloadEntry: workloadEntry
        case .sidecar: sidecar
        case .trafficExtension: trafficExtension
        case .luaPlugin: ["spec": .enforced, "spec.match[].ports": .warned("match ports are not applied; the plugin runs on every port")]
        case .peerAuthentication, .workloadGroup: ["spec": .enforced]
        case .requestAuthentication: requestAuthentication
        case .authorizationPolicy: authorizationPolicy
        case .telemetry: telemetry
        }
    }

    /// The support of a field by its pattern: the most specific entry covering it. A field no
    /// entry covers but that holds fields some entry names (`spec.trafficPolicy`) is only a
    /// container: its fields are judged one by one.
    static func support(_ pattern: String, in table: [String: Support]) -> Support {
        if table[pattern] == nil,
           table.keys.contains(where: { $0.count > pattern.count && $0.hasPrefix(pattern) && ".[{".contains($0[$0.index($0.startIndex, offsetBy: pattern.count)]) }) {
            return .enforced
        }
        var p = Substring(pattern)
        while !p.isEmpty {
            if let s = table[String(p)] { return s }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" || $0 == "{" }) else { break }
            p = p[..<cut]
        }
        return .warned(notEnforced)
    }

    /// Whether some field under `pattern` is enforced: then `pattern` is only a container, and
    /// its fields that are not are warned one by one (`connectionPool.tcp` with `connectTimeout`).
    static func enforcesPart(of pattern: String, in table: [String: Support]) -> Bool {
        table.contains { key, support in
            support == .enforced && key.count > pattern.count && key.hasPrefix(pattern)
                && ".[{".contains(key[key.index(key.startIndex, offsetBy: pattern.count)])
        }
    }

    /// The present fields `table` does not enforce, each with what meshd does instead: only the
    /// topmost field of a warned subtree, in the order given.
    static func unenforced(_ fields: [FieldPosition], in table: [String: Support]) -> [(FieldPosition, String)] {
        var out: [(FieldPosition, String)] = []
        for field in fields {
            guard case .warned(let what) = support(field.pattern, in: table),
                  !enforcesPart(of: field.pattern, in: table) else { continue }
            let covered = out.contains { prior, _ in
                field.path.count > prior.path.count && field.path.hasPrefix(prior.path)
                    && ".[".contains(field.path[field.path.index(field.path.startIndex, offsetBy: prior.path.count)])
            }
            if !covered { out.append((field, what)) }
        }
        return out
    }

    // MARK: tables

    /// MeshConfig (`--mesh-config`): patterns are the fields' own paths (no `spec.`).
    static let meshConfig: [String: Support] = {
        var t: [String: Support] = [
        "trustDomain": .enforced, "rootNamespace": .enforced,
        "trustDomainAliases": .warned("trust domain aliases are not accepted: peers must be of trustDomain"),
        "accessLogFile": .enforced, "accessLogEncoding": .enforced, "accessLogFormat": .enforced,
        "enableTracing": .enforced,
        "defaultConfig": .warned("proxy defaults are set per proxy by its flags; ignored"),
        "defaultConfig.tracing": .warned("only tracing.sampling is applied"),
        "defaultConfig.tracing.sampling": .enforced,
        "outboundTrafficPolicy": .enforced,
        "enableAutoMtls": .warned("auto mTLS is always on for sidecars that have a mesh identity; ignored"),
        "extensionProviders": .enforced,
        "extensionProviders[].name": .enforced,
        "extensionProviders[].envoyExtAuthzHttp": .enforced,
        "extensionProviders[].envoyExtAuthzHttp.clearRouteCache": .warned("the route is not recomputed after the authorizer's headers are added"),
        "extensionProviders[].envoyExtAuthzHttp.includeHeadersInCheck": .warned("deprecated and not read: use includeRequestHeadersInCheck"),
        "extensionProviders[].envoyExtAuthzGrpc": .warned("gRPC external authorization is not supported"),
        "extensionProviders[].meshdLuaPlugin": .enforced,
        "extensionProviders[].opentelemetry": .enforced,
        "extensionProviders[].opentelemetry.maxTagLength": .warned("tags are not truncated"),
        "extensionProviders[].opentelemetry.http": .warned("spans are exported with OTLP/HTTP to POST /v1/traces; ignored"),
        "extensionProviders[].opentelemetry.grpc": .warned("OTLP/gRPC export is not supported; spans go over OTLP/HTTP"),
        "extensionProviders[].opentelemetry.resourceDetectors": .warned("not supported; ignored"),
        "extensionProviders[].opentelemetry.dynatraceSampler": .warned("not supported; ignored"),
        "extensionProviders[].zipkin": .warned("Zipkin export is not supported; use opentelemetry"),
        "extensionProviders[].prometheus": .enforced,
        "extensionProviders[].envoyFileAccessLog": .enforced,
        "extensionProviders[].envoyFileAccessLog.omitEmptyValues": .warned("empty values are written as \"-\" (TEXT) or null (JSON)"),
        "defaultProviders": .enforced,
        "defaultProviders.metrics": .warned("the istio.stats filter always reports to Prometheus"),
        ]
        for kind in ExtensionProvider.unsupportedKinds {
            t["extensionProviders[]." + kind] = .warned("\(kind) providers are not supported by meshd; the provider is unused")
        }
        return t
    }()

    /// Telemetry: access logging, tracing and Prometheus metric overrides are applied per proxy.
    static let telemetry: [String: Support] = [
        "spec.selector": .enforced,
        "spec.targetRef": .warned("policy targets are not applied to telemetry; use a selector"),
        "spec.targetRefs": .warned("policy targets are not applied to telemetry; use a selector"),
        "spec.accessLogging": .enforced,
        "spec.accessLogging[].match": .warned("entries for one side only (CLIENT or SERVER) are not applied; use CLIENT_AND_SERVER"),
        "spec.tracing": .enforced,
        "spec.tracing[].match": .warned("entries for one side only (CLIENT or SERVER) are not applied; use CLIENT_AND_SERVER"),
        "spec.tracing[].customTags{}.formatter": .warned("formatter tags are not supported; the tag is not added"),
        "spec.tracing[].useRequestIdForTraceSampling": .warned("sampling always draws its own random number; ignored"),
        "spec.tracing[].enableIstioTags": .warned("Istio's tags are always added"),
        "spec.tracing[].disableContextPropagation": .warned("trace context is always propagated"),
        "spec.metrics": .enforced,
        "spec.metrics[].reportingInterval": .warned("Prometheus scrapes the proxy; there is no reporting interval to set"),
        "spec.metrics[].overrides[].match.customMetric": .warned("custom metrics are not supported; the override is not applied"),
    ]


    static let virtualService: [String: Support] = [
        "spec.hosts": .enforced, "spec.gateways": .enforced, "spec.exportTo": .enforced,
        "spec.http": .enforced,
        "spec.http[].match[].statPrefix": .warned("stats are not kept per match; ignored"),
        "spec.http[].redirect.prefixRewrite": .warned("prefixRewrite is not applied; the redirect keeps the path (or uses uri)"),
        "spec.http[].fault.delay.exponentialDelay": .warned("exponential delays are not supported (nor by Istio); the delay is ignored"),
        "spec.http[].fault.abort.http2Error": .warned("http2Error aborts are not supported (nor by Istio); the abort is ignored"),
        // Enforced by gateways (TCP and TLS PASSTHROUGH servers); on sidecars the translator
        // warns, proxy by proxy (they have no TCP listeners yet).
        "spec.tcp": .enforced,
        "spec.tls": .enforced,
    ]

    static let destinationRule: [String: Support] = {
        var t: [String: Support] = [
            "spec.host": .enforced, "spec.exportTo": .enforced, "spec.workloadSelector": .enforced,
            "spec.subsets": .enforced,
        ]
        for policy in ["spec.trafficPolicy", "spec.subsets[].trafficPolicy"] {
            for p in [policy, policy + ".portLevelSettings[]"] {
                t[p + ".loadBalancer.simple"] = .enforced
                t[p + ".loadBalancer.consistentHash"] = .enforced
                t[p + ".loadBalancer.localityLbSetting"] = .enforced
                t[p + ".loadBalancer.localityLbSetting.failoverPriority"] = .warned("failover by label priority is not supported; failover follows region, zone and subzone")
                t[p + ".loadBalancer.warmupDurationSecs"] = .enforced
                t[p + ".loadBalancer.warmup"] = .enforced
                for f in ["connectTimeout", "maxConnections", "tcpKeepalive"] {
                    t[p + ".connectionPool.tcp." + f] = .enforced
                }
                for f in ["idleTimeout", "h2UpgradePolicy", "maxRetries", "http1MaxPendingRequests", "http2MaxRequests"] {
                    t[p + ".connectionPool.http." + f] = .enforced
                }
                t[p + ".connectionPool.http.maxRequestsPerConnection"] = .warned("enforced on HTTP/1.1 upstream connections only; HTTP/2 connections are reused without a request limit")
                t[p + ".connectionPool.tcp"] = .warned(notEnforced)
                t[p + ".connectionPool.http"] = .warned(notEnforced)
                t[p + ".connectionPool.tcp.idleTimeout"] = .warned("not enforced (no TCP proxying of this cluster); connectionPool.http.idleTimeout applies to HTTP")
                t[p + ".connectionPool.http.maxConcurrentStreams"] = .warned("not enforced; the upstream's SETTINGS_MAX_CONCURRENT_STREAMS applies")
                t[p + ".connectionPool.http.useClientProtocol"] = .warned("not supported; the port's protocol is used")
                for f in ["consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveLocalOriginFailures",
                          "splitExternalLocalOriginErrors", "interval", "baseEjectionTime", "maxEjectionPercent", "minHealthPercent"] {
                    t[p + ".outlierDetection." + f] = .enforced
                }
                t[p + ".outlierDetection"] = .warned(notEnforced)
                t[p + ".outlierDetection.consecutiveErrors"] = .warned("deprecated and not applied; use consecutive5xxErrors or consecutiveGatewayErrors")
                t[p + ".tls.mode"] = .enforced
                for f in ["clientCertificate", "privateKey", "caCertificates", "sni", "insecureSkipVerify"] {
                    t[p + ".tls." + f] = .enforced
                }
                // From the secret store at gateways (and sidecars of a DestinationRule with a
                // workloadSelector); other sidecars are warned by the translator, proxy by proxy.
                t[p + ".tls.credentialName"] = .enforced
                t[p + ".tls.subjectAltNames"] = .enforced
                t[p + ".tls.caCrl"] = .warned("certificate revocation lists are not checked")
                t[p + ".loadBalancer.zoneAwareLbSetting"] = .warned("zone-aware load balancing is not supported; every endpoint is used alike")
                t[p + ".tunnel"] = .warned("tunneling is not supported; connections go to the endpoint directly")
                t[p + ".proxyProtocol"] = .warned("PROXY protocol is not sent")
            }
            t[policy + ".portLevelSettings[].port"] = .enforced
            t[policy + ".retryBudget"] = .warned("retry budgets are not applied; concurrent retries are bounded by connectionPool.http.maxRetries")
        }
        return t
    }()

    static let gateway: [String: Support] = [
        "spec.selector": .enforced, "spec.servers[].name": .enforced, "spec.servers[].hosts": .enforced,
        "spec.servers[].port.number": .enforced, "spec.servers[].port.protocol": .enforced, "spec.servers[].port.name": .enforced,
        "spec.servers[].port.targetPort": .warned("targetPort is not used; the listener is on the server port"),
        "spec.servers[].bind": .warned("bind is not applied; the listener uses the gateway's address"),
        "spec.servers[].defaultEndpoint": .warned("defaultEndpoint is not applied"),
        "spec.servers[].tls.httpsRedirect": .enforced, "spec.servers[].tls.mode": .enforced,
        "spec.servers[].tls.serverCertificate": .enforced, "spec.servers[].tls.privateKey": .enforced,
        "spec.servers[].tls.caCertificates": .enforced,
        // From the secret store: `<config dir>/<name>/` (docs/security.md).
        "spec.servers[].tls.credentialName": .enforced, "spec.servers[].tls.credentialNames": .enforced,
        "spec.servers[].tls.tlsCertificates": .warned("tlsCertificates are not supported: ignored (a server with no other certificate is skipped)"),
        "spec.servers[].tls.caCertCredentialName": .enforced,
        "spec.servers[].tls.subjectAltNames": .enforced, "spec.servers[].tls.verifyCertificateSpki": .enforced,
        "spec.servers[].tls.verifyCertificateHash": .enforced, "spec.servers[].tls.minProtocolVersion": .enforced,
        "spec.servers[].tls.maxProtocolVersion": .enforced, "spec.servers[].tls.cipherSuites": .enforced,
        "spec.servers[].tls.caCrl": .warned("certificate revocation lists are not checked"),
    ]

    static let serviceEntry: [String: Support] = [
        "spec.hosts": .enforced, "spec.ports": .enforced, "spec.resolution": .enforced, "spec.exportTo": .enforced,
        "spec.workloadSelector": .enforced,
        "spec.endpoints[].address": .enforced, "spec.endpoints[].ports": .enforced, "spec.endpoints[].labels": .enforced,
        "spec.endpoints[].network": .enforced,
        "spec.endpoints[].locality": .enforced,
        "spec.endpoints[].weight": .warned("endpoint weights are not applied; endpoints share load alike"),
        "spec.endpoints[].serviceAccount": .warned("the endpoint gets no mesh identity: auto mTLS applies only to sidecars that registered with a token"),
        "spec.addresses": .warned("meshd captures no traffic by IP address; the service is reached by host name"),
        // MESH_INTERNAL or MESH_EXTERNAL: ServiceEntry endpoints never get auto mTLS in meshd
        // (only registered sidecars do), and routing does not depend on it.
        "spec.location": .enforced,
        "spec.subjectAltNames": .warned("peer certificates are not checked against subjectAltNames"),
    ]

    static let workloadEntry: [String: Support] = [
        "spec.address": .enforced, "spec.ports": .enforced, "spec.labels": .enforced,
        // Multi-network (NetworkGateway): another network's sidecars through its gateway, the rest dropped.
        "spec.network": .enforced,
        "spec.locality": .enforced,
        "spec.weight": .warned("endpoint weights are not applied; endpoints share load alike"),
        "spec.serviceAccount": .warned("the endpoint gets no mesh identity: auto mTLS applies only to sidecars that registered with a token"),
    ]

    static let sidecar: [String: Support] = [
        "spec.workloadSelector": .enforced, "spec.egress[].hosts": .enforced,
        "spec.egress[].port": .enforced, "spec.egress[].bind": .enforced,
        "spec.egress[].captureMode": .warned("captureMode is not applied: meshd captures no traffic, every listener is bound explicitly (as NONE)"),
        "spec.ingress": .warned("Sidecar ingress listeners are not supported; the sidecar's inbound port forwards to its app port"),
        "spec.outboundTrafficPolicy": .enforced,
        "spec.inboundConnectionPool": .warned("inbound connection limits are not applied"),
    ]

    static let trafficExtension: [String: Support] = [
        "spec.selector": .enforced, "spec.targetRefs": .enforced, "spec.phase": .enforced, "spec.priority": .enforced,
        "spec.match[].mode": .enforced, "spec.lua": .enforced,
        "spec.match[].ports": .warned("match ports are not applied; the extension runs on every port"),
        "spec.wasm": .warned("Wasm is not run by meshd; the extension is skipped (use lua, or a LuaPlugin)"),
    ]

    static let requestAuthentication: [String: Support] = [
        "spec": .enforced,
        "spec.jwtRules[].spaceDelimitedClaims": .warned("claims are not split on spaces; such a claim matches as one string"),
    ]

    static let authorizationPolicy: [String: Support] = [
        "spec": .enforced,
        "spec.rules[].from[].source.trustDomains": .warned("trust domains are not matched; the rule ignores them"),
        "spec.rules[].from[].source.notTrustDomains": .warned("trust domains are not matched; the rule ignores them"),
    ]
}
