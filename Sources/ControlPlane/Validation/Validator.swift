/// Checks resources the way `istioctl validate` does: the schema (unknown fields, wrong
/// types, unknown enum values, found while loading) and each kind's rules.
public enum Validator {
    /// The store's load errors followed by every resource's errors.
    public static func validate(_ store: ConfigStore) -> [ValidationError] {
        store.loadErrors + validate(store.resources, meshConfig: store.meshConfig)
    }

    /// `meshConfig`: what Telemetry resources' provider names are checked against.
    public static func validate(_ resources: [Resource], meshConfig: MeshConfig = MeshConfig()) -> [ValidationError] {
        resources.flatMap { validate($0, meshConfig: meshConfig) }
    }

    public static func validate(_ resource: Resource, meshConfig: MeshConfig = MeshConfig()) -> [ValidationError] {
        var c = Issues()
        c.list = resource.issues
        switch resource.spec {
        case .virtualService(let s): VirtualServiceRules.check(s, &c)
        case .destinationRule(let s): DestinationRuleRules.check(s, &c)
        case .gateway(let s): GatewayRules.check(s, &c)
        case .serviceEntry(let s): ServiceEntryRules.check(s, &c)
        case .workloadEntry(let s): ServiceEntryRules.check(workloadEntry: s, "spec", &c, requireAddress: true, standalone: true)
        case .workloadGroup(let s): ServiceEntryRules.check(s, &c)
        case .sidecar(let s): SidecarRules.check(s, &c)
        case .peerAuthentication(let s): SecurityRules.check(s, &c)
        case .requestAuthentication(let s): SecurityRules.check(s, &c)
        case .authorizationPolicy(let s): SecurityRules.check(s, &c)
        case .trafficExtension(let s): ExtensionRules.check(s, &c)
        case .luaPlugin(let s): ExtensionRules.check(s, &c)
        case .telemetry(let s): TelemetryRules.check(s, meshConfig: meshConfig, &c)
        }
        // A field already reported as unreadable is not reported again as missing.
        let decodePaths = Set(resource.issues.map(\.path))
        let rules = c.list.dropFirst(resource.issues.count).filter { !decodePaths.contains($0.path) }
        return (resource.issues + rules).map {
            ValidationError(location: resource.location(of: $0.path), resource: resource.id, path: $0.path, reason: $0.reason)
        }
    }
}

extension Validator {
    /// What a valid resource asks for that meshd does not do: every present field its kind's
    /// `FieldSupport` table does not enforce (the topmost one of a subtree), and values meshd
    /// handles differently. Each names the field's own line.
    public static func warnings(_ resource: Resource) -> [ValidationError] {
        var c = Issues()
        if let note = FieldSupport.kindNote(resource.kind), resource.fields.contains(where: { $0.path.hasPrefix("spec.") }) {
            c.add("spec", note)
        }
        for (field, what) in FieldSupport.unenforced(resource.fields.filter { $0.path.hasPrefix("spec.") },
                                                     in: FieldSupport.table(resource.kind)) {
            c.add(field.path, what)
        }
        ValueSupport.check(resource.spec, &c)
        return c.list.map {
            ValidationError(.warning, location: resource.location(of: $0.path), resource: resource.id, path: $0.path, reason: $0.reason)
        }.sorted { ($0.location.line, $0.path) < ($1.location.line, $1.path) }
    }

    public static func warnings(_ resources: [Resource]) -> [ValidationError] {
        resources.flatMap(warnings)
    }

    /// The store's skipped documents (kinds meshd does not implement) and every resource's warnings.
    public static func warnings(_ store: ConfigStore) -> [ValidationError] {
        store.loadWarnings + warnings(store.resources)
    }
}

/// Values of enforced fields that meshd handles differently from Istio.
enum ValueSupport {
    static func check(_ spec: ResourceSpec, _ c: inout Issues) {
        switch spec {
        case .destinationRule(let dr):
            if let tp = dr.trafficPolicy { policy(tp, "spec.trafficPolicy", &c) }
            for (i, s) in dr.subsets.enumerated() {
                if let tp = s.trafficPolicy { policy(tp, "spec.subsets[\(i)].trafficPolicy", &c) }
            }
        case .gateway(let gw):
            for (i, s) in gw.servers.enumerated() {
                let p = "spec.servers[\(i)]"
                let proto = s.port?.effectiveProtocol ?? .unspecified
                let mode = s.tls?.mode
                if proto == .tls, mode != "PASSTHROUGH", mode != "AUTO_PASSTHROUGH" {
                    c.add(p + ".tls.mode", "TLS servers that terminate TLS before TCP routes are not supported (use HTTPS, or PASSTHROUGH); the server is skipped")
                }
                if let min = s.tls?.minProtocolVersion, min == "TLSV1_0" || min == "TLSV1_1" {
                    c.add(p + ".tls.minProtocolVersion", "OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level; TLS 1.2 is the lowest version served")
                }
                if proto == .udp {
                    c.add(p + ".port.protocol", "UDP servers are not supported; the server is skipped")
                }
            }
        case .serviceEntry(let se):
            if se.ports.isEmpty {
                c.add("spec.hosts", "a ServiceEntry without ports gives meshd nothing to route to (it routes by port); its hosts are not reachable through meshd")
            }
            if let sel = se.workloadSelector, sel.labels.isEmpty {
                c.add("spec.workloadSelector", "workload selector specified without labels, will be applied to all services in namespace")
            }
        case .virtualService(let vs):
            for (i, http) in vs.http.enumerated() {
                for (j, m) in http.match.enumerated() {
                    for key in (Array(m.headers.keys) + Array(m.withoutHeaders.keys)).sorted() where VirtualServiceRules.isJWTClaim(key) {
                        let field = m.headers[key] != nil ? "headers" : "withoutHeaders"
                        c.add("spec.http[\(i)].match[\(j)].\(field).\(key)",
                              "JWT claim routing is not supported (meshd does not validate JWTs yet); this match never matches")
                    }
                }
            }
            for (i, http) in vs.http.enumerated() where http.route.count > 1 {
                for (j, d) in http.route.enumerated() where d.headers != nil {
                    c.add("spec.http[\(i)].route[\(j)].headers",
                          "per-destination headers with several destinations are not supported yet; ignored")
                }
            }
        default:
            break
        }
    }

    static func policy(_ tp: TrafficPolicy, _ p: String, _ c: inout Issues) {
        settings(tp.settings, p, &c)
        for (i, pl) in tp.portLevelSettings.enumerated() { settings(pl.settings, "\(p).portLevelSettings[\(i)]", &c) }
    }

    static func settings(_ s: PolicySettings, _ p: String, _ c: inout Issues) {
        if s.loadBalancer?.simple == "PASSTHROUGH" {
            c.add(p + ".loadBalancer.simple", "PASSTHROUGH is not supported; LEAST_REQUEST is used")
        }
    }
}
