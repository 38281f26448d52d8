/// Cross-reference checks over a whole store, like `istioctl analyze`: what one resource
/// names that another should define. Schema and per-resource rules are the Validator's.
public enum Analyzer {
    public static func analyze(_ store: ConfigStore, registry: Registry? = nil) -> [Finding] {
        var a = Analysis(store: store, registry: registry ?? Registry(store: store))
        a.run()
        return a.findings.sorted { ($0.location, $0.path, $0.message) < ($1.location, $1.path, $1.message) }
    }
}

private struct Analysis {
    let store: ConfigStore
    let registry: Registry
    let index: ConfigIndex
    var findings: [Finding] = []

    init(store: ConfigStore, registry: Registry) {
        self.store = store
        self.registry = registry
        self.index = ConfigIndex(store)
    }

    mutating func add<T>(_ severity: Finding.Severity, _ code: String, _ c: Config<T>, _ path: String, _ message: String) {
        findings.append(Finding(severity, code, location: c.location, resource: c.id, path: path, message: message))
    }

    mutating func run() {
        for (old, new) in store.duplicates {
            findings.append(Finding(.warning, "DuplicateResource", location: old.location, resource: old.id,
                                    message: "defined again at \(new.location); the later definition is used"))
        }
        for vs in index.virtualServices { virtualService(vs) }
        meshHostConflicts()
        for gw in index.gateways where index.virtualServices(boundTo: gw).isEmpty {
            add(.warning, "UnboundGateway", gw, "", "no VirtualService binds this Gateway")
        }
        for dr in index.destinationRules { destinationRule(dr) }
        for p in store.luaPlugins { targets(p, p.spec.targetRefs) }
        for t in store.trafficExtensions {
            targets(t, t.spec.targetRefs)
            if t.spec.wasm != nil { add(.warning, "UnsupportedExtension", t, "spec.wasm", "meshd runs Lua only; this Wasm extension is ignored") }
        }
        securityPolicies()
    }

    // MARK: VirtualService

    mutating func virtualService(_ vs: Config<VirtualService>) {
        for (i, g) in vs.spec.gateways.enumerated() { gatewayRef(vs, g, "spec.gateways[\(i)]") }
        for (i, route) in vs.spec.http.enumerated() {
            let p = "spec.http[\(i)]"
            for (j, m) in route.match.enumerated() {
                for (k, g) in m.gateways.enumerated() { gatewayRef(vs, g, "\(p).match[\(j)].gateways[\(k)]") }
            }
            for (j, d) in route.route.enumerated() { destination(vs, d.destination, "\(p).route[\(j)].destination") }
            destination(vs, route.mirror, p + ".mirror")
            for (j, m) in route.mirrors.enumerated() { destination(vs, m.destination, "\(p).mirrors[\(j)].destination") }
        }
        for (i, route) in vs.spec.tcp.enumerated() {
            for (j, d) in route.route.enumerated() { destination(vs, d.destination, "spec.tcp[\(i)].route[\(j)].destination") }
        }
        for (i, route) in vs.spec.tls.enumerated() {
            for (j, d) in route.route.enumerated() { destination(vs, d.destination, "spec.tls[\(i)].route[\(j)].destination") }
        }
    }

    mutating func gatewayRef(_ vs: Config<VirtualService>, _ ref: String, _ path: String) {
        guard ref != "mesh", index.gateway(ref, from: vs.namespace) == nil else { return }
        let (ns, name) = ConfigIndex.split(ref, vs.namespace)
        add(.error, "ReferencedResourceNotFound", vs, path, "gateway \"\(ref)\" not found (no Gateway \(ns)/\(name))")
    }

    mutating func destination(_ vs: Config<VirtualService>, _ d: Destination?, _ path: String) {
        guard let d, let host = d.host, !host.isEmpty else { return }
        let fqdn = HostNames.fqdn(host, namespace: vs.namespace)
        let service = registry.service(host: host, namespace: vs.namespace)
        if service == nil {
            add(.error, "ReferencedResourceNotFound", vs, path + ".host",
                "host \"\(host)\"\(fqdn == host ? "" : " (\(fqdn))") is not a known service: no ServiceEntry defines it")
        }
        if let service {
            if let port = d.port?.number, service.port(port) == nil {
                add(.error, "ReferencedResourceNotFound", vs, path + ".port.number",
                    "port \(port) is not a port of \(service.host) (ports: \(service.ports.map { String($0.number) }.joined(separator: ", ")))")
            } else if d.port == nil, service.ports.count > 1 {
                add(.warning, "DestinationPortRequired", vs, path + ".port",
                    "\(service.host) has several ports; name the port (the lowest one is used)")
            }
        }
        if let subset = d.subset {
            let dr = index.destinationRule(for: fqdn)
            if dr == nil {
                add(.error, "ReferencedResourceNotFound", vs, path + ".subset",
                    "subset \"\(subset)\" of host \"\(host)\" not found: no DestinationRule for \(fqdn)")
            } else if !dr!.spec.subsets.contains(where: { $0.name == subset }) {
                add(.error, "ReferencedResourceNotFound", vs, path + ".subset",
                    "subset \"\(subset)\" of host \"\(host)\" is not defined by \(dr!.id)")
            }
        }
    }

    /// Two VirtualServices for sidecars claiming the same host: only the first one is used.
    mutating func meshHostConflicts() {
        var owner: [String: Config<VirtualService>] = [:]
        for vs in index.virtualServices where vs.spec.appliesToMesh {
            for (i, h) in vs.spec.hosts.enumerated() {
                let fqdn = HostNames.fqdn(h, namespace: vs.namespace)
                if let first = owner[fqdn] {
                    add(.warning, "ConflictingMeshVirtualServiceHosts", vs, "spec.hosts[\(i)]",
                        "host \(fqdn) is also claimed by \(first.id) (\(first.location)), which is used")
                } else {
                    owner[fqdn] = vs
                }
            }
        }
    }

    // MARK: DestinationRule

    mutating func destinationRule(_ dr: Config<DestinationRule>) {
        guard let host = dr.spec.host else { return }
        let fqdn = HostNames.fqdn(host, namespace: dr.namespace)
        let services = registry.services.filter { HostNames.matches(pattern: fqdn, host: $0.host) }
        guard let service = services.first else {
            add(.warning, "ReferencedResourceNotFound", dr, "spec.host",
                "host \"\(host)\"\(fqdn == host ? "" : " (\(fqdn))") is not a known service: no ServiceEntry defines it")
            return
        }
        if dr.spec.trafficPolicy?.settings.tls?.mode == "DISABLE", let selector = service.selector,
           PeerAuthenticationPolicy.mode(namespace: service.namespace, labels: selector, port: nil, store: store) == .strict {
            // Plaintext to workloads that accept only mutual TLS: every request fails.
            add(.warning, "ConflictingMeshTLS", dr, "spec.trafficPolicy.tls.mode",
                "DISABLE sends plaintext to \(service.host), whose workloads a STRICT PeerAuthentication allows only mutual TLS")
        }
        guard services.count == 1, service.selector != nil || !service.inlineEndpoints.isEmpty,
              let port = service.ports.first else { return }
        let declaresWorkloads = declaresWorkloads(service)
        for (i, s) in dr.spec.subsets.enumerated() where !s.labels.isEmpty {
            guard registry.endpoints(of: service, port: port, subset: s.labels).isEmpty else { continue }
            let subset = "subset \"\(s.name ?? "")\" of \(service.host)"
            if let selector = service.selector, !declaresWorkloads {
                // Nothing is missing: the config leaves the workloads to the sidecars.
                add(.info, "SubsetEndpointsFromSidecars", dr, "spec.subsets[\(i)]",
                    "\(subset) has no WorkloadEntry; its endpoints come from sidecars registering when they connect ("
                    + sidecarCommand(namespace: service.namespace, labels: selector.merging(s.labels) { $1 }) + ")")
            } else {
                add(.warning, "SubsetSelectsNoEndpoints", dr, "spec.subsets[\(i)]",
                    "subset \"\(s.name ?? "")\" selects no endpoints of \(service.host)")
            }
        }
    }

    /// Whether the config itself gives the service workloads: inline endpoints, or
    /// WorkloadEntries its selector matches (rather than only sidecars registered at runtime).
    func declaresWorkloads(_ service: RegistryService) -> Bool {
        guard let selector = service.selector else { return !service.inlineEndpoints.isEmpty }
        return registry.workloads(selectedBy: selector, namespace: service.namespace).contains {
            if case .workloadEntry = $0.origin { return true }
            return false
        }
    }

    /// How a sidecar registers as a workload with these labels.
    func sidecarCommand(namespace: String, labels: [String: String]) -> String {
        let list = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return "meshd sidecar" + (namespace == "default" ? "" : " --namespace \(namespace)") + " --labels \(list)"
    }

    // MARK: plugins

    mutating func targets<T>(_ plugin: Config<T>, _ refs: [PolicyTargetReference]) {
        for (i, ref) in refs.enumerated() {
            guard let kind = ref.kind, let name = ref.name else { continue }
            let ns = ref.namespace ?? plugin.namespace
            let path = "spec.targetRefs[\(i)]"
            switch kind {
            case "Gateway":
                if !index.gateways.contains(where: { $0.namespace == ns && $0.name == name }) {
                    add(.error, "ReferencedResourceNotFound", plugin, path, "target Gateway \(ns)/\(name) not found")
                }
            case "VirtualService":
                guard let vs = index.virtualServices.first(where: { $0.namespace == ns && $0.name == name }) else {
                    add(.error, "ReferencedResourceNotFound", plugin, path, "target VirtualService \(ns)/\(name) not found")
                    continue
                }
                if let section = ref.sectionName, !vs.spec.http.contains(where: { $0.name == section }) {
                    add(.error, "ReferencedResourceNotFound", plugin, path + ".sectionName",
                        "VirtualService \(ns)/\(name) has no http route named \"\(section)\"")
                }
            case "Service":
                if registry.service(host: name, namespace: ns) == nil
                    && !store.serviceEntries.contains(where: { $0.namespace == ns && $0.name == name }) {
                    add(.error, "ReferencedResourceNotFound", plugin, path,
                        "target Service \(name) (\(HostNames.fqdn(name, namespace: ns))) not found")
                }
            case "ServiceEntry":
                if !store.serviceEntries.contains(where: { $0.namespace == ns && $0.name == name }) {
                    add(.error, "ReferencedResourceNotFound", plugin, path, "target ServiceEntry \(ns)/\(name) not found")
                }
            default:
                add(.info, "UnsupportedTarget", plugin, path, "meshd does not attach plugins to \(kind) targets; ignored")
            }
        }
    }

    // MARK: security policies

    /// What meshd enforces differently from Istio (each also a translation warning), and
    /// policies whose Gateway target does not exist.
    mutating func securityPolicies() {
        for ap in store.authorizationPolicies {
            if ap.spec.action == "CUSTOM", let name = ap.spec.provider?.name {
                if case .envoyExtAuthzHttp? = store.meshConfig.provider(named: name)?.kind {} else {
                    add(.warning, "NotEnforced", ap, "spec.provider.name",
                        "no envoyExtAuthzHttp extension provider \"\(name)\" in the mesh config; this CUSTOM policy denies every request its rules match")
                }
            }
            policyTargets(ap, (ap.spec.targetRef.map { [$0] } ?? []) + ap.spec.targetRefs)
        }
        for ra in store.requestAuthentications {
            policyTargets(ra, (ra.spec.targetRef.map { [$0] } ?? []) + ra.spec.targetRefs)
        }
    }

    mutating func policyTargets<T>(_ policy: Config<T>, _ refs: [PolicyTargetReference]) {
        for (i, ref) in refs.enumerated() {
            let path = "spec.targetRefs[\(i)]"
            guard ref.kind == "Gateway", let name = ref.name else {
                add(.warning, "NotEnforced", policy, path, "meshd attaches policies to Gateway targets only; this target is not enforced")
                continue
            }
            let ns = ref.namespace ?? policy.namespace
            if !index.gateways.contains(where: { $0.namespace == ns && $0.name == name }) {
                add(.error, "ReferencedResourceNotFound", policy, path, "target Gateway \(ns)/\(name) not found")
            }
        }
    }
}
