import MeshAPI

/// A proxy's configuration and what the translator could not carry over.
public struct Translation: Sendable, Equatable {
    public var bootstrap: Bootstrap
    /// `Kind/ns/name: path: message`, sorted: features not supported yet, skipped servers,
    /// clusters left without endpoints, resources ignored because they are invalid.
    public var warnings: [String]
    /// The warnings of the resources this config was made from (fields meshd does not
    /// enforce), as `meshd validate` prints them: what `proxy-status` shows for the proxy.
    public var configWarnings: [String] = []
    /// What a sidecar's own listeners take from its shared part (namespace, labels): the
    /// inbound listener's security filters and protocols, the egress listeners.
    var sidecar = SidecarShared()

    public init(bootstrap: Bootstrap, warnings: [String], configWarnings: [String] = []) {
        self.bootstrap = bootstrap
        self.warnings = warnings
        self.configWarnings = configWarnings
    }
}

/// Turns the store and the registry into one proxy's Bootstrap. Pure and deterministic:
/// listeners, route configs, clusters and plugins are sorted by name, so equal inputs give
/// equal Bootstraps. Resources that fail validation are left out (and named in the warnings).
/// `TranslationSnapshot` does the same for many proxies, sharing the work they have in common.
public struct Translator: Sendable {
    public var store: ConfigStore
    public var registry: Registry

    /// `registry` defaults to one built from `store` alone (no registered workloads).
    public init(store: ConfigStore, registry: Registry? = nil) {
        self.store = store
        self.registry = registry ?? Registry(store: store)
    }

    public func bootstrap(for proxy: ProxyIdentity) -> Bootstrap {
        translate(for: proxy).bootstrap
    }

    public func translate(for proxy: ProxyIdentity) -> Translation {
        let config = ValidatedConfig(store)
        return Self.complete(Self.translateShared(for: proxy, config, registry), for: proxy, invalid: config.invalid,
                             store: config.valid)
    }

    /// Everything but a sidecar's `SidecarBuilder.local` part (for a gateway: everything).
    /// For a sidecar this depends only on its namespace, its labels (through selectors) and
    /// whether it has an app port, never on its name, address or ports.
    static func translateShared(for proxy: ProxyIdentity, _ config: ValidatedConfig, _ registry: Registry) -> Translation {
        let ctx = TranslationContext(proxy: proxy, store: config.valid, registry: registry)
        var bootstrap = Bootstrap()
        var sidecar = SidecarShared()
        switch proxy.kind {
        case .sidecar:
            bootstrap.routeConfigs = SidecarBuilder.build(ctx)
            sidecar = SidecarBuilder.shared(ctx)
            bootstrap.routeConfigs += sidecar.egressRouteConfigs
        case .gateway:
            (bootstrap.listeners, bootstrap.routeConfigs) = GatewayBuilder.build(ctx)
            for i in bootstrap.listeners.indices {
                let name = bootstrap.listeners[i].name
                if var tcp = bootstrap.listeners[i].tcpProxy {
                    // Bytes get Istio's network RBAC in front of the stats filter.
                    let bound = bootstrap.listeners[i].port
                    let serverPort = ctx.proxy.gatewayPorts.first { $0.value == bound }?.key ?? bound
                    tcp.networkFilters = SecurityBuilder.networkFilters(ctx, listener: name, serverPort: serverPort)
                        + (tcp.networkFilters ?? [])
                    bootstrap.listeners[i].tcpProxy = tcp
                    continue
                }
                let security = SecurityBuilder.filters(ctx, listener: name)
                if !security.isEmpty {
                    bootstrap.listeners[i].httpFilters = StatsFilterBuilder.prepending(security, to: bootstrap.listeners[i].httpFilters)
                }
            }
        }
        bootstrap.clusters = ClusterBuilder.build(ctx) + ctx.extraClusters.values
        let routes = bootstrap.routeConfigs.flatMap(\.virtualHosts).flatMap(\.routes)
        let byteRoutes = (bootstrap.listeners + sidecar.egressListeners).flatMap { $0.tcpProxy?.routes ?? [] }
        if routes.contains(where: { $0.route?.cluster == Naming.passthroughCluster })
            || byteRoutes.contains(where: { $0.cluster == Naming.passthroughCluster }) {
            bootstrap.clusters.append(SidecarBuilder.passthroughCluster)
        }
        bootstrap.luaPlugins = PluginBuilder.build(ctx)
        bootstrap.telemetry = TelemetryBuilder.build(ctx)
        var translation = Translation(bootstrap: sorted(bootstrap), warnings: ctx.warnings.sorted(),
                                      configWarnings: ctx.used.sorted().flatMap { config.warnings[$0] ?? [] })
        translation.sidecar = sidecar
        return translation
    }

    /// The shared part plus the proxy's own listeners, inbound route config and cluster.
    static func complete(_ shared: Translation, for proxy: ProxyIdentity, invalid: [String], store: ConfigStore) -> Translation {
        var bootstrap = shared.bootstrap
        if proxy.kind == .sidecar {
            let outbound = bootstrap.routeConfigs.first { $0.name == Naming.outbound }
            let local = Self.local(proxy, outboundFilters: RouteFilterBuilder.filters(for: outbound),
                                   shared: shared.sidecar, meshTLS: SidecarBuilder.meshTLS(proxy, store))
            bootstrap.listeners += local.listeners
            bootstrap.routeConfigs += local.routeConfigs
            bootstrap.clusters += local.clusters
            bootstrap = sorted(bootstrap)
        }
        return Translation(bootstrap: bootstrap, warnings: (shared.warnings + invalid).sorted(),
                           configWarnings: shared.configWarnings)
    }

    /// A sidecar's own listeners, inbound route config and cluster, with the security filters
    /// of its shared part on the inbound listener.
    static func local(_ proxy: ProxyIdentity, outboundFilters: [HTTPFilterConfig]?, shared: SidecarShared,
                      meshTLS: MeshTLSMode?) -> (listeners: [Listener], routeConfigs: [RouteConfig], clusters: [Cluster]) {
        var local = SidecarBuilder.local(proxy, outboundFilters: outboundFilters, shared: shared, meshTLS: meshTLS)
        if let app = proxy.appPort, let i = local.listeners.firstIndex(where: { $0.name == Naming.inbound }) {
            if !shared.inboundFilters.isEmpty, !local.listeners[i].routeConfig.isEmpty {
                local.listeners[i].httpFilters = StatsFilterBuilder.prepending(SecurityBuilder.inbound(shared.inboundFilters, appPort: app),
                                                                               to: local.listeners[i].httpFilters)
            }
            if var tcp = local.listeners[i].tcpProxy {
                tcp.networkFilters = SecurityBuilder.inbound(shared.inboundNetworkFilters ?? [], appPort: app, http: false)
                    + (tcp.networkFilters ?? [])
                local.listeners[i].tcpProxy = tcp
            }
        }
        return local
    }

    private static func sorted(_ b: Bootstrap) -> Bootstrap {
        var b = b
        b.listeners.sort { $0.name < $1.name }
        b.routeConfigs.sort { $0.name < $1.name }
        b.clusters.sort { $0.name < $1.name }
        return b
    }
}

/// The store's effective resources that pass validation, and a warning for each one that does not.
/// With each valid resource's warnings, by id.
struct ValidatedConfig: Sendable {
    var valid = ConfigStore()
    var invalid: [String] = []
    var warnings: [String: [String]] = [:]

    init(_ store: ConfigStore) {
        valid.meshConfig = store.meshConfig
        valid.credentials = store.credentials
        valid.jwksCacheDurationMs = store.jwksCacheDurationMs
        for r in store.effective {
            if Validator.validate(r, meshConfig: store.meshConfig).isEmpty {
                valid.add(r)
                let w = Validator.warnings(r)
                if !w.isEmpty { warnings[r.id] = w.map(\.description) }
            } else {
                invalid.append("\(r.id): invalid, ignored (see meshd validate)")
            }
        }
    }
}
