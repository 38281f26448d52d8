import MeshAPI

/// A proxy's configuration and what the translator could not carry over.
public struct Translation: Sendable, Equatable {
    public var bootstrap: Bootstrap
    /// `Kind/ns/name: path: message`, sorted: features not supported yet, skipped servers,
    /// clusters left without endpoints, resources ignored because they are invalid.
    public var warnings: [String]
}

/// Turns the store and the registry into one proxy's Bootstrap. Pure and deterministic:
/// listeners, route configs, clusters and plugins are sorted by name, so equal inputs give
/// equal Bootstraps. Resources that fail validation are left out (and named in the warnings).
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
        var valid = ConfigStore()
        var invalid: [String] = []
        for r in store.effective {
            if Validator.validate(r).isEmpty { valid.add(r) } else { invalid.append("\(r.id): invalid, ignored (see meshd validate)") }
        }
        let ctx = TranslationContext(proxy: proxy, store: valid, registry: registry)
        var bootstrap = Bootstrap()
        switch proxy.kind {
        case .sidecar:
            (bootstrap.listeners, bootstrap.routeConfigs) = SidecarBuilder.build(ctx)
            bootstrap.clusters = SidecarBuilder.inboundCluster(proxy).map { [$0] } ?? []
        case .gateway:
            (bootstrap.listeners, bootstrap.routeConfigs) = GatewayBuilder.build(ctx)
        }
        bootstrap.clusters += ClusterBuilder.build(ctx)
        bootstrap.luaPlugins = PluginBuilder.build(ctx)
        bootstrap.listeners.sort { $0.name < $1.name }
        bootstrap.routeConfigs.sort { $0.name < $1.name }
        bootstrap.clusters.sort { $0.name < $1.name }
        return Translation(bootstrap: bootstrap, warnings: (ctx.warnings.sorted() + invalid).sorted())
    }
}
