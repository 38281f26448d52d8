import MeshAPI
import NIOConcurrencyHelpers

/// One config and one registry, translated for many proxies: what `Translator` gives each
/// proxy, with the work they have in common done once.
///
/// - The store is validated once, not once per proxy.
/// - A sidecar's config is its own small part (listeners, inbound route config and cluster:
///   `SidecarBuilder.local`) plus a shared part that depends only on its namespace, whether it
///   has an app port, and its labels *as far as any selector looks at them*: the shared part is
///   translated once per `sharingKey` — typically once per namespace — and JSON-encoded once.
/// - Resources equal to those of the `previous` snapshot keep their encoding (and memory):
///   after one VirtualService changes, one route config is encoded again, not every cluster.
///
/// Gateways are translated whole, once per identity.
public final class TranslationSnapshot: Sendable {
    public let store: ConfigStore
    public let registry: Registry
    private let config: ValidatedConfig
    /// The label keys some selector on a proxy's labels uses; other labels cannot change a translation.
    let selectorLabelKeys: Set<String>
    private let memo: NIOLockedValueBox<Memo>

    struct Shared: Sendable {
        var translation: Translation
        var resources: SharedResources
    }

    private struct Memo: Sendable {
        var shared: [ProxyIdentity: Shared] = [:]
        /// A sidecar's own part, encoded, by identity and the filters its outbound listener needs.
        var own: [OwnKey: OwnPart] = [:]
        /// The previous snapshot's (not the snapshot itself: no chain of them), to reuse encodings from.
        var previousShared: [ProxyIdentity: Shared] = [:]
        var previousOwn: [OwnKey: OwnPart] = [:]
    }

    /// The outbound listener's filters follow the shared routes (`RouteFilterBuilder`), so
    /// they are part of what a sidecar's own part is cached by.
    private struct OwnKey: Hashable, Sendable {
        var proxy: ProxyIdentity
        var filters: [String]
    }

    /// A sidecar's own part, and the inbound mesh TLS mode and shared part it was made with.
    struct OwnPart: Sendable {
        var meshTLS: MeshTLSMode?
        var shared: SidecarShared
        var entries: [String: ResourceEntry]
    }

    public init(store: ConfigStore, registry: Registry, previous: TranslationSnapshot? = nil) {
        self.store = store
        self.registry = registry
        config = ValidatedConfig(store)
        selectorLabelKeys = Self.selectorLabelKeys(config.valid)
        var memo = Memo()
        if let previous {
            (memo.previousShared, memo.previousOwn) = previous.memo.withLockedValue { ($0.shared, $0.own) }
        }
        self.memo = NIOLockedValueBox(memo)
    }

    /// Equal to `Translator(store:registry:).translate(for:)`.
    public func translate(for proxy: ProxyIdentity) -> Translation {
        Translator.complete(shared(for: proxy).translation, for: proxy, invalid: config.invalid, store: config.valid)
    }

    public func bootstrap(for proxy: ProxyIdentity) -> Bootstrap {
        translate(for: proxy).bootstrap
    }

    /// The proxy's resources as the discovery stream sends them: the shared part is the same
    /// object for every proxy with the same `sharingKey`.
    public func resources(for proxy: ProxyIdentity) -> ProxyResources {
        let shared = shared(for: proxy)
        let warnings = shared.translation.configWarnings
        guard proxy.kind == .sidecar else { return ProxyResources(shared: shared.resources, own: [:], warnings: warnings) }
        let outbound = shared.translation.bootstrap.routeConfigs.first { $0.name == Naming.outbound }
        return ProxyResources(shared: shared.resources, own: own(for: proxy, filters: RouteFilterBuilder.filters(for: outbound)),
                              warnings: warnings)
    }

    // MARK: sharing

    /// What a translation's shared part depends on: for a sidecar its namespace, its labels
    /// that some selector uses, and whether it has an app port — not its name, address or
    /// ports; for a gateway, everything.
    func sharingKey(_ proxy: ProxyIdentity) -> ProxyIdentity {
        guard proxy.kind == .sidecar else { return proxy }
        return ProxyIdentity(kind: .sidecar, name: "", namespace: proxy.namespace,
                             labels: proxy.labels.filter { selectorLabelKeys.contains($0.key) }, address: "",
                             outboundPort: 0, inboundPort: 0, appPort: proxy.appPort == nil ? nil : 0)
    }

    /// Every label key a selector matched against a *proxy's* labels uses: DestinationRule and
    /// Sidecar `workloadSelector`, VirtualService match `sourceLabels`, LuaPlugin and
    /// TrafficExtension `selector`, Gateway `selector`, AuthorizationPolicy and
    /// RequestAuthentication and Telemetry `selector`. `labels.matches(selector)` only reads
    /// the selector's keys, so dropping every other key changes no match.
    /// ServiceEntry `workloadSelector` too when the entry has a port carrying bytes: the
    /// services a sidecar's workload is part of decide whether its inbound proxies bytes.
    /// (Other ServiceEntry selectors and subset labels select *endpoints*, not the proxy.)
    static func selectorLabelKeys(_ store: ConfigStore) -> Set<String> {
        // A proxy's locality orders its endpoints (locality load balancing).
        // Its network decides which endpoints it reaches directly and which through a gateway.
        var keys: Set<String> = [Locality.regionLabel, Locality.zoneLabel, Locality.subzoneLabel, NetworkGateway.networkLabel]
        for dr in store.destinationRules { keys.formUnion(dr.spec.workloadSelector?.matchLabels.keys ?? [:].keys) }
        for sc in store.sidecars { keys.formUnion(sc.spec.workloadSelector?.labels.keys ?? [:].keys) }
        // The services selecting a sidecar's workload say whether its inbound carries bytes.
        for se in store.serviceEntries where se.spec.ports.contains(where: { $0.effectiveProtocol.isTCP }) {
            keys.formUnion(se.spec.workloadSelector?.labels.keys ?? [:].keys)
        }
        for vs in store.virtualServices {
            for http in vs.spec.http { for m in http.match { keys.formUnion(m.sourceLabels.keys) } }
            for tcp in vs.spec.tcp { for m in tcp.match { keys.formUnion(m.sourceLabels.keys) } }
            for tls in vs.spec.tls { for m in tls.match { keys.formUnion(m.sourceLabels.keys) } }
        }
        for p in store.luaPlugins { keys.formUnion(p.spec.selector?.matchLabels.keys ?? [:].keys) }
        for t in store.trafficExtensions { keys.formUnion(t.spec.selector?.matchLabels.keys ?? [:].keys) }
        for g in store.gateways { keys.formUnion(g.spec.selector.keys) }
        for p in TranslationContext.policies(store) { keys.formUnion(p.selector.keys) }
        for t in store.telemetries { keys.formUnion(t.spec.selector?.matchLabels.keys ?? [:].keys) }
        return keys
    }

    private func shared(for proxy: ProxyIdentity) -> Shared {
        let key = sharingKey(proxy)
        return memo.withLockedValue { memo in
            if let hit = memo.shared[key] { return hit }
            let translation = Translator.translateShared(for: key, config, registry)
            let previous = memo.previousShared[key]
            let entries = Self.encode(translation.bootstrap, reusing: previous?.translation.bootstrap,
                                      previous?.resources.entries ?? [:])
            let shared = Shared(translation: translation, resources: SharedResources(entries))
            memo.shared[key] = shared
            return shared
        }
    }

    private func own(for proxy: ProxyIdentity, filters outboundFilters: [HTTPFilterConfig]?) -> [String: ResourceEntry] {
        let key = OwnKey(proxy: proxy, filters: outboundFilters?.map(\.name) ?? [])
        // The shared part first (it takes the memo's lock too): its security filters go on the
        // inbound listener, its egress listeners are bound at the proxy's address.
        let sidecar = shared(for: proxy).translation.sidecar
        return memo.withLockedValue { memo in
            let meshTLS = SidecarBuilder.meshTLS(proxy, config.valid)
            // A cached part is reused only with the same PeerAuthentication mode and shared part.
            if let hit = memo.own[key] ?? memo.previousOwn[key], hit.meshTLS == meshTLS, hit.shared == sidecar {
                memo.own[key] = hit
                return hit.entries
            }
            let local = Translator.local(proxy, outboundFilters: outboundFilters, shared: sidecar, meshTLS: meshTLS)
            let entries = ResourceCodec.resources(of: Bootstrap(listeners: local.listeners, routeConfigs: local.routeConfigs,
                                                                clusters: local.clusters))
            memo.own[key] = OwnPart(meshTLS: meshTLS, shared: sidecar, entries: entries)
            return entries
        }
    }

    /// `ResourceCodec.resources(of:)`, except that a resource equal to the one of the same name
    /// in `old` keeps its entry from `oldEntries` instead of being encoded again.
    static func encode(_ bootstrap: Bootstrap, reusing old: Bootstrap?, _ oldEntries: [String: ResourceEntry])
        -> [String: ResourceEntry] {
        guard let old else { return ResourceCodec.resources(of: bootstrap) }
        var out: [String: ResourceEntry] = [:]
        var fresh = Bootstrap()
        func reuse<T: Equatable>(_ kind: String, _ items: [T], _ oldItems: [T], name: (T) -> String,
                                 _ add: (inout Bootstrap, T) -> Void) {
            let before = Dictionary(oldItems.map { (name($0), $0) }) { a, _ in a }
            for item in items {
                let key = "\(kind)/\(name(item))"
                if before[name(item)] == item, let entry = oldEntries[key] { out[key] = entry } else { add(&fresh, item) }
            }
        }
        reuse("listener", bootstrap.listeners, old.listeners, name: \.name) { $0.listeners.append($1) }
        reuse("route", bootstrap.routeConfigs, old.routeConfigs, name: \.name) { $0.routeConfigs.append($1) }
        reuse("cluster", bootstrap.clusters, old.clusters, name: \.name) { $0.clusters.append($1) }
        reuse("plugin", bootstrap.luaPlugins, old.luaPlugins, name: \.name) { $0.luaPlugins.append($1) }
        fresh.telemetry = bootstrap.telemetry
        out.merge(ResourceCodec.resources(of: fresh)) { _, new in new }
        return out
    }
}

/// Snapshots made one after another, each reusing the encodings of the one before.
public final class TranslationSnapshots: Sendable {
    private let last = NIOLockedValueBox<TranslationSnapshot?>(nil)

    public init() {}

    public func next(store: ConfigStore, registry: Registry) -> TranslationSnapshot {
        last.withLockedValue { last in
            let snapshot = TranslationSnapshot(store: store, registry: registry, previous: last)
            last = snapshot
            return snapshot
        }
    }
}
