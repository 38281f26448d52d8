/// DestinationRule, ServiceEntry, Sidecar, security-policy and Kubernetes Service analyzers.
extension Analysis {
    // MARK: DestinationRule

    mutating func destinationRule(_ dr: Config<DestinationRule>) {
        serverVerification(dr)
        guard let host = dr.spec.host else { return }
        let fqdn = HostNames.fqdn(host, namespace: dr.namespace)
        let services = registry.services.filter { HostNames.matches(pattern: fqdn, host: $0.host) || HostNames.matches(pattern: $0.host, host: fqdn) }
        guard let service = services.first else {
            return add(.unknownDestinationRuleHost, dr, "spec.host",
                       "The host \(host) defined in the DestinationRule does not match any services in the mesh.")
        }
        mtlsConflict(dr, service)
        guard services.count == 1, service.selector != nil || !service.inlineEndpoints.isEmpty,
              let port = service.ports.first else { return }
        let declared = declaresWorkloads(service)
        for (i, s) in dr.spec.subsets.enumerated() where !s.labels.isEmpty {
            guard registry.endpoints(of: service, port: port, subset: s.labels).isEmpty else { continue }
            if let selector = service.selector, !declared {
                // Nothing is missing: the config leaves the workloads to the sidecars.
                add(.subsetEndpointsFromSidecars, dr, "spec.subsets[\(i)]",
                    "subset \"\(s.name ?? "")\" of \(service.host) has no WorkloadEntry; its endpoints come from sidecars registering when they connect ("
                    + sidecarCommand(namespace: service.namespace, labels: selector.merging(s.labels) { $1 }) + ")")
            } else {
                add(.destinationRuleSubsetNotSelectPods, dr, "spec.subsets[\(i)].name",
                    "The Subset \(s.name ?? "") defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).")
            }
        }
    }

    /// Istio's CaCertificateAnalyzer: SIMPLE or MUTUAL TLS without caCertificates does not check
    /// the server (unless a workload-selected rule names a credential).
    mutating func serverVerification(_ dr: Config<DestinationRule>) {
        guard let tp = dr.spec.trafficPolicy else { return }
        func unverified(_ tls: ClientTLSSettings?) -> String? {
            guard let tls, let mode = tls.mode, mode == "SIMPLE" || mode == "MUTUAL" else { return nil }
            if tls.caCertificates != nil || (tls.credentialName != nil && dr.spec.workloadSelector != nil) { return nil }
            return mode
        }
        let name = "\(dr.namespace)/\(dr.name)", host = dr.spec.host ?? ""
        if let mode = unverified(tp.settings.tls) {
            add(.noServerCertificateVerificationDestinationLevel, dr, "spec.trafficPolicy.tls.mode",
                "DestinationRule \(name) in namespace \(dr.namespace) has TLS mode set to \(mode) but no caCertificates are set to validate server identity for host: \(host)")
        }
        for (i, pl) in tp.portLevelSettings.enumerated() {
            guard let mode = unverified(pl.settings.tls) else { continue }
            add(.noServerCertificateVerificationPortLevel, dr, "spec.trafficPolicy.portLevelSettings[\(i)].tls.mode",
                "DestinationRule \(name) in namespace \(dr.namespace) has TLS mode set to \(mode) but no caCertificates are set to validate server identity for host: \(host) at port number:\(pl.port?.number ?? 0)")
        }
    }

    /// Istio's former MTLSPolicyConflict: plaintext (tls DISABLE) to workloads that a STRICT
    /// PeerAuthentication allows only mutual TLS: every request fails.
    mutating func mtlsConflict(_ dr: Config<DestinationRule>, _ service: RegistryService) {
        guard let selector = service.selector else { return }
        var disabled: [String] = []
        if dr.spec.trafficPolicy?.settings.tls?.mode == "DISABLE" { disabled.append("spec.trafficPolicy.tls.mode") }
        for (i, pl) in (dr.spec.trafficPolicy?.portLevelSettings ?? []).enumerated() where pl.settings.tls?.mode == "DISABLE" {
            disabled.append("spec.trafficPolicy.portLevelSettings[\(i)].tls.mode")
        }
        for (i, s) in dr.spec.subsets.enumerated() where s.trafficPolicy?.settings.tls?.mode == "DISABLE" {
            disabled.append("spec.subsets[\(i)].trafficPolicy.tls.mode")
        }
        guard !disabled.isEmpty,
              PeerAuthenticationPolicy.mode(namespace: service.namespace, labels: selector, port: nil, store: store) == .strict,
              let policy = strictPolicy(namespace: service.namespace, labels: selector) else { return }
        for path in disabled {
            add(.mtlsPolicyConflict, dr, path,
                "A DestinationRule and Policy are in conflict with regards to mTLS for host \(service.host). The DestinationRule \"\(dr.namespace)/\(dr.name)\" specifies that mTLS must be false but the Policy object \"\(policy)\" specifies STRICT.")
        }
    }

    /// The PeerAuthentication that makes workloads with `labels` STRICT: the most specific one with a mode.
    func strictPolicy(namespace: String, labels: [String: String]) -> String? {
        let all = store.peerAuthentications.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        let levels = [
            all.first { $0.namespace == namespace && $0.spec.selector.map { !$0.matchLabels.isEmpty && labels.matches($0.matchLabels) } == true },
            all.first { $0.namespace == namespace && ($0.spec.selector?.matchLabels.isEmpty ?? true) },
            all.first { $0.namespace == store.meshConfig.rootNamespace && ($0.spec.selector?.matchLabels.isEmpty ?? true) },
        ]
        return levels.compactMap { $0 }.first { $0.spec.mtls?.mode == "STRICT" }.map { "\($0.namespace)/\($0.name)" }
    }

    /// Whether the config itself gives the service workloads: inline endpoints, or declared
    /// workloads its selector matches (rather than only sidecars registered at runtime).
    func declaresWorkloads(_ service: RegistryService) -> Bool {
        guard let selector = service.selector else { return !service.inlineEndpoints.isEmpty }
        return !declaredWorkloads(selectedBy: selector, namespace: service.namespace).isEmpty
    }

    /// How a sidecar registers as a workload with these labels.
    func sidecarCommand(namespace: String, labels: [String: String]) -> String {
        "meshd sidecar" + (namespace == "default" ? "" : " --namespace \(namespace)") + " --labels \(Self.selectorString(labels))"
    }

    // MARK: ServiceEntry

    /// Istio's ProtocolAddressesAnalyzer: ports of protocol TCP (or none) need addresses.
    mutating func serviceEntryAddresses(_ se: Config<ServiceEntry>) {
        guard se.spec.addresses.isEmpty else { return }
        for (i, p) in se.spec.ports.enumerated() where (p.protocol ?? "").isEmpty || p.protocol?.uppercased() == "TCP" {
            add(.serviceEntryAddressesRequired, se, "spec.ports[\(i)]", "ServiceEntry addresses are required for this protocol.")
        }
    }

    // MARK: Sidecar

    /// Istio's sidecar.SelectorAnalyzer: a selector selects a declared workload (IST0101); no two
    /// Sidecars select one workload (IST0110); at most one Sidecar per namespace has no selector (IST0111).
    mutating func sidecarSelectors() {
        let sidecars = store.sidecars
        var bySelectedWorkload: [String: [Config<Sidecar>]] = [:]
        var namespaceWide: [String: [Config<Sidecar>]] = [:]
        for sc in sidecars {
            guard let labels = sc.spec.workloadSelector?.labels, !labels.isEmpty else {
                namespaceWide[sc.namespace, default: []].append(sc)
                continue
            }
            guard inputDeclaresWorkloads else { continue }
            let selected = declaredWorkloads(selectedBy: labels, namespace: sc.namespace)
            if selected.isEmpty {
                add(.referencedResourceNotFound, sc, "spec.workloadSelector.labels.\(labels.keys.sorted()[0])",
                    "Referenced selector not found: \(Self.quoted(Self.selectorString(labels)))")
            }
            for w in selected { bySelectedWorkload[w.id, default: []].append(sc) }
        }
        for (workload, list) in bySelectedWorkload.sorted(by: { $0.key < $1.key }) where list.count > 1 {
            let names = list.map(\.name).sorted()
            let ns = list[0].namespace
            for sc in list {
                add(.conflictingSidecarWorkloadSelectors, sc, "spec.workloadSelector",
                    "The Sidecars [\(names.joined(separator: " "))] in namespace \(Self.quoted(ns)) select the same workload pod \(Self.quoted(workload)), which can lead to undefined behavior.")
            }
        }
        for (ns, list) in namespaceWide.sorted(by: { $0.key < $1.key }) where list.count > 1 {
            let names = list.map(\.name).sorted()
            for sc in list {
                add(.multipleSidecarsWithoutWorkloadSelectors, sc, "metadata.name",
                    "The Sidecars [\(names.joined(separator: " "))] in namespace \(Self.quoted(ns)) have no workload selector, which can lead to undefined behavior.")
            }
        }
    }

    // MARK: security policies

    /// What meshd enforces differently from Istio (each also a translation warning), policies
    /// whose Gateway target does not exist, and selectors no declared workload matches (IST0127).
    mutating func securityPolicies() {
        for ap in store.authorizationPolicies {
            if ap.spec.action == "CUSTOM", let name = ap.spec.provider?.name {
                switch store.meshConfig.provider(named: name)?.kind {
                case .envoyExtAuthzHttp?:
                    break
                case .meshdLuaPlugin(let lua)?:
                    let (ns, plugin) = lua.reference(rootNamespace: store.meshConfig.rootNamespace)
                    if !store.luaPlugins.contains(where: { $0.namespace == ns && $0.name == plugin }) {
                        add(.notEnforced, ap, "spec.provider.name",
                            "extension provider \"\(name)\" names LuaPlugin \(ns)/\(plugin), which does not exist; this CUSTOM policy denies every request its rules match")
                    }
                default:
                    add(.notEnforced, ap, "spec.provider.name",
                        "no envoyExtAuthzHttp or meshdLuaPlugin extension provider \"\(name)\" in the mesh config; this CUSTOM policy denies every request its rules match")
                }
            }
            policyTargets(ap, (ap.spec.targetRef.map { [$0] } ?? []) + ap.spec.targetRefs)
            policySelector(ap, ap.spec.selector)
        }
        for ra in store.requestAuthentications {
            policyTargets(ra, (ra.spec.targetRef.map { [$0] } ?? []) + ra.spec.targetRefs)
            policySelector(ra, ra.spec.selector)
        }
        for pa in store.peerAuthentications { policySelector(pa, pa.spec.selector) }
    }

    /// A policy's selector selects a declared workload: in its namespace, or anywhere for the root namespace's.
    mutating func policySelector<T>(_ policy: Config<T>, _ selector: LabelSelector?) {
        guard inputDeclaresWorkloads, let labels = selector?.matchLabels, !labels.isEmpty else { return }
        let ns: String? = policy.namespace == store.meshConfig.rootNamespace ? nil : policy.namespace
        guard declaredWorkloads(selectedBy: labels, namespace: ns).isEmpty else { return }
        add(.noMatchingWorkloadsFound, policy, "spec.selector.matchLabels.\(labels.keys.sorted()[0])",
            "No matching workloads for this resource with the following labels: \(Self.selectorString(labels))")
    }

    mutating func policyTargets<T>(_ policy: Config<T>, _ refs: [PolicyTargetReference]) {
        for (i, ref) in refs.enumerated() {
            let path = "spec.targetRefs[\(i)]"
            guard ref.kind == "Gateway", let name = ref.name else {
                add(.notEnforced, policy, path, "meshd attaches policies to Gateway targets only; this target is not enforced")
                continue
            }
            let ns = ref.namespace ?? policy.namespace
            if !index.gateways.contains(where: { $0.namespace == ns && $0.name == name }) {
                add(.referencedResourceNotFound, policy, path, "Referenced target Gateway not found: \(Self.quoted("\(ns)/\(name)"))")
            }
        }
    }

    // MARK: Kubernetes Services

    /// Istio's PortNameAnalyzer: a Service port whose name (or appProtocol) names no protocol.
    mutating func kubernetesPortNames() {
        for svc in kubernetes.services where svc.type != "ExternalName" {
            for p in svc.ports where KubernetesInventory.portProtocol(p) == nil {
                findings.append(Finding(.portNameIsNotUnderNamingConvention, location: SourceLocation(file: svc.location.file, line: p.line),
                                        resource: svc.id, path: "spec.ports",
                                        message: "Port name \(p.name) (port: \(p.port), targetPort: \(p.targetPort ?? "0")) doesn't follow the naming convention of Istio port."))
            }
        }
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
                    add(.referencedResourceNotFound, plugin, path, "Referenced target Gateway not found: \(Self.quoted("\(ns)/\(name)"))")
                }
            case "VirtualService":
                guard let vs = index.virtualServices.first(where: { $0.namespace == ns && $0.name == name }) else {
                    add(.referencedResourceNotFound, plugin, path, "Referenced target VirtualService not found: \(Self.quoted("\(ns)/\(name)"))")
                    continue
                }
                if let section = ref.sectionName, !vs.spec.http.contains(where: { $0.name == section }) {
                    add(.referencedResourceNotFound, plugin, path + ".sectionName",
                        "Referenced http route of VirtualService \(ns)/\(name) not found: \(Self.quoted(section))")
                }
            case "Service":
                if registry.service(host: name, namespace: ns) == nil
                    && !store.serviceEntries.contains(where: { $0.namespace == ns && $0.name == name }) {
                    add(.referencedResourceNotFound, plugin, path, "Referenced target Service not found: \(Self.quoted("\(ns)/\(name)"))")
                }
            case "ServiceEntry":
                if !store.serviceEntries.contains(where: { $0.namespace == ns && $0.name == name }) {
                    add(.referencedResourceNotFound, plugin, path, "Referenced target ServiceEntry not found: \(Self.quoted("\(ns)/\(name)"))")
                }
            default:
                add(.unsupportedTarget, plugin, path, "meshd does not attach plugins to \(kind) targets; ignored")
            }
        }
    }
}
