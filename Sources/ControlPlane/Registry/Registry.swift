/// Services (from ServiceEntries) and workloads (WorkloadEntries plus workloads registered at
/// runtime), and the endpoints they give each service port. A value: the discovery server
/// keeps one, updates it, and hands copies to the translator.
public struct Registry: Sendable, Equatable {
    public private(set) var services: [RegistryService] = []
    /// Position in `services` by host.
    private var serviceIndex: [String: Int] = [:]
    private var entries: [WorkloadInstance] = []
    private var dynamic: [String: DynamicWorkload] = [:]
    /// Derived from `entries` and `dynamic`, rebuilt whenever they change: every workload sorted by id,
    /// and their positions in that list by `namespace` + one label pair, so selecting a
    /// service's workloads looks at the few that carry one of its labels, not at all of them.
    public private(set) var workloads: [WorkloadInstance] = []
    private var byLabel: [LabelKey: [Int]] = [:]

    private struct LabelKey: Hashable, Sendable {
        var namespace: String
        var key: String
        var value: String
    }

    public init(store: ConfigStore = ConfigStore(), dynamic workloads: [DynamicWorkload] = []) {
        var byID: [String: DynamicWorkload] = [:]
        for w in workloads { byID[w.id] = w }
        dynamic = byID
        update(store: store)
    }

    /// Re-reads services and WorkloadEntries from `store`; registered workloads stay.
    public mutating func update(store: ConfigStore) {
        var byHost: [String: Int] = [:]
        var list: [RegistryService] = []
        for se in store.serviceEntries {
            let ports = se.spec.ports.compactMap { p -> ServicePort? in
                guard let n = p.number else { return nil }
                return ServicePort(number: n, name: p.name ?? "", protocol: p.effectiveProtocol, targetPort: p.targetPort)
            }.sorted()
            for h in se.spec.hosts {
                let host = HostNames.fqdn(h, namespace: se.namespace)
                guard byHost[host] == nil else { continue }  // the first ServiceEntry for a host wins
                byHost[host] = list.count
                list.append(RegistryService(host: host, namespace: se.namespace, ports: ports,
                                            resolution: se.spec.resolution ?? "NONE", exportTo: se.spec.exportTo,
                                            source: se.id, location: se.location,
                                            selector: se.spec.workloadSelector?.labels, inlineEndpoints: se.spec.endpoints,
                                            gatewayOf: NetworkGateway.network(nil, labels: se.meta.labels).map {
                                                .init(network: $0, port: se.meta.annotations[NetworkGateway.portAnnotation]
                                                    .flatMap { Int($0) } ?? NetworkGateway.defaultPort)
                                            }))
            }
        }
        services = list.sorted { $0.host < $1.host }
        serviceIndex = Dictionary(uniqueKeysWithValues: services.enumerated().map { ($0.element.host, $0.offset) })
        entries = store.workloadEntries.compactMap { we in
            guard let address = we.spec.address else { return nil }
            return WorkloadInstance(name: we.name, namespace: we.namespace, address: address, ports: we.spec.ports,
                                    labels: we.spec.labels, serviceAccount: we.spec.serviceAccount,
                                    origin: .workloadEntry(we.location),
                                    locality: Locality(we.spec.locality) ?? Locality.of(labels: we.spec.labels),
                                    network: NetworkGateway.network(we.spec.network, labels: we.spec.labels))
        }
        reindex()
    }

    /// Adds services and workloads declared other than by ServiceEntries and WorkloadEntries
    /// (the Kubernetes objects `meshd analyze` reads). A host a ServiceEntry defines keeps it.
    mutating func add(services extra: [RegistryService], workloads declared: [WorkloadInstance]) {
        services = (services + extra.filter { serviceIndex[$0.host] == nil }).sorted { $0.host < $1.host }
        serviceIndex = Dictionary(services.enumerated().map { ($0.element.host, $0.offset) }, uniquingKeysWith: { a, _ in a })
        entries += declared
        reindex()
    }

    // MARK: runtime registration

    /// Adds (or replaces, by `namespace/name`) a workload registered by a sidecar.
    public mutating func register(workload: DynamicWorkload) {
        dynamic[workload.id] = workload
        reindex()
    }

    /// Removes a registered workload; returns whether it was there.
    @discardableResult
    public mutating func unregister(id: String) -> Bool {
        guard dynamic.removeValue(forKey: id) != nil else { return false }
        reindex()
        return true
    }

    /// Rebuilds `workloads` (WorkloadEntries and registered workloads, sorted by id) and its index.
    private mutating func reindex() {
        let registered = dynamic.values.map {
            WorkloadInstance(name: $0.name, namespace: $0.namespace, address: $0.address, ports: $0.ports,
                             labels: $0.labels, serviceAccount: $0.serviceAccount, origin: .dynamic,
                             meshIdentity: $0.meshIdentity, locality: Locality.of(labels: $0.labels),
                             network: NetworkGateway.network(nil, labels: $0.labels))
        }
        workloads = (entries + registered).sorted { ($0.id, $0.address) < ($1.id, $1.address) }
        var index: [LabelKey: [Int]] = [:]
        for (i, w) in workloads.enumerated() {
            for (key, value) in w.labels { index[LabelKey(namespace: w.namespace, key: key, value: value), default: []].append(i) }
        }
        byLabel = index
    }

    // MARK: lookups

    /// The service for a host as written in a resource of `namespace` (short names expanded).
    public func service(host: String, namespace: String = "default") -> RegistryService? {
        let fqdn = HostNames.fqdn(host, namespace: namespace)
        if let i = serviceIndex[fqdn] { return services[i] }
        return services.first { $0.isWildcard && HostNames.matches(pattern: $0.host, host: fqdn) }
    }

    /// Workloads in `namespace` whose labels contain `selector`.
    public func workloads(selectedBy selector: [String: String], namespace: String) -> [WorkloadInstance] {
        guard !selector.isEmpty else { return workloads.filter { $0.namespace == namespace } }
        // The workloads carrying the selector's rarest pair, checked against the rest (in id order).
        let lists = selector.map { byLabel[LabelKey(namespace: namespace, key: $0.key, value: $0.value)] ?? [] }
        guard let fewest = lists.min(by: { $0.count < $1.count }) else { return [] }
        return fewest.map { workloads[$0] }.filter { $0.labels.matches(selector) }
    }

    /// The endpoints of one service port whose labels contain `subset` (empty: all), sorted:
    /// selected workloads, else inline endpoints, else (DNS or NONE resolution) the host itself.
    public func endpoints(of service: RegistryService, port: ServicePort, subset: [String: String] = [:]) -> [ServiceEndpoint] {
        func target(_ ports: [String: Int]) -> Int { ports[port.name] ?? port.targetPort ?? port.number }
        var out: [ServiceEndpoint] = []
        if let selector = service.selector {
            out = workloads(selectedBy: selector, namespace: service.namespace).map {
                ServiceEndpoint(address: $0.address, port: target($0.ports), labels: $0.labels, meshIdentity: $0.meshIdentity,
                                locality: $0.locality, network: $0.network)
            }
        } else if !service.inlineEndpoints.isEmpty {
            out = service.inlineEndpoints.compactMap { e in
                guard let address = e.address, !address.hasPrefix("unix://") else { return nil }
                return ServiceEndpoint(address: address, port: target(e.ports), labels: e.labels,
                                       locality: Locality(e.locality) ?? Locality.of(labels: e.labels),
                                       network: NetworkGateway.network(e.network, labels: e.labels))
            }
        } else if service.resolution != "STATIC", !service.isWildcard {
            // DNS: the proxy resolves the host. NONE: meshd captures no traffic, so there is no
            // original destination to pass through to; the host is resolved the same way.
            out = [ServiceEndpoint(address: service.host, port: port.targetPort ?? port.number, labels: [:])]
        }
        return Array(Set(out.filter { $0.labels.matches(subset) })).sorted()
    }
}
