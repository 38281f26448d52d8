import MeshAPI

/// A LuaPlugin, or a TrafficExtension's `lua`, as the code and settings a proxy runs, before
/// it is attached anywhere. `PluginBuilder` attaches it per proxy; `meshd plugin test` runs
/// it offline.
public struct PluginDefinition: Sendable, Equatable {
    /// `Kind/namespace/name` of the resource.
    public var id: String
    public var kind: ResourceKind
    public var namespace: String
    public var name: String
    public var location: SourceLocation
    var selector: [String: String]?
    var targetRefs: [PolicyTargetReference]
    /// `match[].mode` values.
    var modes: [String]
    /// The proxy's phase name (nil: UNSPECIFIED).
    public var phase: String?
    public var priority: Int?
    public var failStrategy: String?
    public var pluginConfig: JSONValue?
    public var limits: LuaPluginLimits?
    /// Modules the code may `require`, by name (nil: none).
    public var modules: [String: String]?
    /// The Lua source as loaded; nil or empty when it could not be read (the Validator says why).
    public var code: String?

    /// Every Lua plugin in the store: LuaPlugins, then TrafficExtensions that have `lua`.
    public static func all(in store: ConfigStore) -> [PluginDefinition] {
        let plugins = store.luaPlugins.map { p in
            PluginDefinition(id: p.id, kind: p.kind, namespace: p.namespace, name: p.name, location: p.location,
                             selector: p.spec.selector?.matchLabels, targetRefs: p.spec.targetRefs,
                             modes: p.spec.match.compactMap(\.mode), phase: PluginPhase.proxyName(p.spec.phase),
                             priority: p.spec.priority, failStrategy: p.spec.failStrategy, pluginConfig: p.spec.pluginConfig,
                             limits: p.spec.limits.map(\.proxyLimits),
                             modules: p.spec.modules.isEmpty ? nil : p.spec.modules, code: p.spec.code)
        }
        let extensions = store.trafficExtensions.compactMap { t -> PluginDefinition? in
            guard let lua = t.spec.lua else { return nil }
            return PluginDefinition(id: t.id, kind: t.kind, namespace: t.namespace, name: t.name, location: t.location,
                                    selector: t.spec.selector?.matchLabels, targetRefs: t.spec.targetRefs,
                                    modes: t.spec.match.compactMap(\.mode), phase: PluginPhase.proxyName(t.spec.phase),
                                    priority: t.spec.priority, failStrategy: nil, pluginConfig: nil, limits: nil,
                                    modules: nil, code: lua.inlineCode)
        }
        return plugins + extensions
    }

    /// What the proxy receives for this plugin (nil without code), named as the translator
    /// names it: `NAMESPACE.NAME`, `#PART` for the further attachments of one resource.
    public func proxyPlugin(part: Int = 1, attachTo: PluginAttachment? = nil) -> LuaPlugin? {
        guard let code, !code.isEmpty else { return nil }
        return LuaPlugin(name: Naming.plugin(namespace: namespace, name, part: part), phase: phase, priority: priority,
                         failStrategy: failStrategy, inlineCode: code, pluginConfig: pluginConfig, limits: limits,
                         modules: modules, attachTo: attachTo)
    }
}
