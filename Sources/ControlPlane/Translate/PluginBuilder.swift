import MeshAPI

/// LuaPlugins and TrafficExtensions (Lua) for one proxy, with where they attach.
///
/// - `selector` (or neither selector nor targetRefs): plugins in the proxy's namespace, or in
///   the root namespace `istio-system`, whose labels match → every route of every listener
///   (`match[].mode` CLIENT → outbound/gateway listeners, SERVER → the inbound listener).
/// - `targetRefs`: Gateway → the listeners carrying that Gateway's servers; Service (or
///   ServiceEntry) → the virtual hosts of that service; VirtualService → its virtual hosts,
///   and with `sectionName` only the http route of that name.
/// Targets a single attachment cannot express together become several plugins
/// (`ns.name`, `ns.name#2`, …).
/// A LuaPlugin that a `meshdLuaPlugin` extension provider names is an authorizer: it runs where
/// CUSTOM policies naming that provider match (ExtAuthzBuilder), never as a filter of its own.
enum PluginBuilder {
    static func build(_ ctx: TranslationContext) -> [LuaPlugin] {
        var out: [LuaPlugin] = []
        let authorizers = authorizerIDs(ctx.store.meshConfig)
        for s in PluginDefinition.all(in: ctx.store) {
            if s.kind == .luaPlugin, authorizers.contains(s.id) {
                warnIgnoredByAuthorizer(s, ctx)
                continue
            }
            guard let attachments = attachments(s, ctx) else { continue }
            guard s.code?.isEmpty == false else {
                ctx.warn(s.id, "spec", "the plugin's source could not be read; plugin skipped")
                continue
            }
            ctx.use(s.id)
            out += attachments.enumerated().compactMap { k, a in s.proxyPlugin(part: k + 1, attachTo: a) }
        }
        return out.sorted { $0.name < $1.name }
    }

    /// An authorizer runs where the CUSTOM policies naming its provider match, and fails as
    /// the provider says: where it would attach, and its failStrategy, are ignored.
    private static func warnIgnoredByAuthorizer(_ s: PluginDefinition, _ ctx: TranslationContext) {
        let ignored: [(String, Bool)] = [
            ("spec.selector", s.selector != nil), ("spec.targetRefs", !s.targetRefs.isEmpty), ("spec.match", !s.modes.isEmpty),
            ("spec.phase", s.phase != nil), ("spec.priority", s.priority != nil), ("spec.failStrategy", s.failStrategy != nil),
        ]
        for (path, present) in ignored where present {
            ctx.warn(s.id, path, "this LuaPlugin is the authorizer of a meshdLuaPlugin extension provider: it runs for the CUSTOM policies naming that provider, which also decides its failures; ignored")
        }
    }

    /// `LuaPlugin/<ns>/<name>` of every LuaPlugin a `meshdLuaPlugin` provider names.
    static func authorizerIDs(_ mesh: MeshConfig) -> Set<String> {
        Set(mesh.extensionProviders.compactMap { p in
            guard case .meshdLuaPlugin(let lua)? = p.kind else { return nil }
            let (namespace, name) = lua.reference(rootNamespace: mesh.rootNamespace)
            return "\(ResourceKind.luaPlugin.rawValue)/\(namespace)/\(name)"
        })
    }

    /// nil: the plugin does not apply to this proxy.
    private static func attachments(_ s: PluginDefinition, _ ctx: TranslationContext) -> [PluginAttachment?]? {
        guard !s.targetRefs.isEmpty else {
            let inScope = s.namespace == ctx.proxy.namespace || s.namespace == ctx.store.meshConfig.rootNamespace
            guard inScope, ctx.proxy.labels.matches(s.selector ?? [:]) else { return nil }
            return modeAttachment(s.modes, ctx).map { [$0] }
        }
        var listeners = Set<String>(), vhosts = Set<String>()
        var sections: [String: (vhosts: Set<String>, routes: Set<String>)] = [:]
        for (i, ref) in s.targetRefs.enumerated() {
            guard let name = ref.name else { continue }
            let ns = ref.namespace ?? s.namespace
            switch ref.kind {
            case "Gateway":
                listeners.formUnion(ctx.listenersByGateway["Gateway/\(ns)/\(name)"] ?? [])
            case "Service":
                vhosts.formUnion(ctx.vhostsByService[HostNames.fqdn(name, namespace: ns)] ?? [])
                vhosts.formUnion(serviceEntryVirtualHosts(ns, name, ctx))
            case "ServiceEntry":
                vhosts.formUnion(serviceEntryVirtualHosts(ns, name, ctx))
            case "VirtualService":
                let id = "VirtualService/\(ns)/\(name)"
                let names = ctx.vhostsByVirtualService[id] ?? []
                if let section = ref.sectionName {
                    guard !names.isEmpty else { continue }
                    // The proxy refuses a plugin attached to a route it does not have.
                    guard ctx.routesByVirtualService[id]?.contains(section) == true else {
                        ctx.warn(s.id, "spec.targetRefs[\(i)].sectionName",
                                 "\(id) has no http route named \"\(section)\" here; target skipped")
                        continue
                    }
                    sections[id, default: ([], [])].vhosts.formUnion(names)
                    sections[id]!.routes.insert(section)
                } else {
                    vhosts.formUnion(names)
                }
            default:
                continue
            }
        }
        var out: [PluginAttachment?] = []
        if !listeners.isEmpty { out.append(PluginAttachment(listeners: listeners.sorted())) }
        if !vhosts.isEmpty { out.append(PluginAttachment(virtualHosts: vhosts.sorted())) }
        for id in sections.keys.sorted() {
            out.append(PluginAttachment(virtualHosts: sections[id]!.vhosts.sorted(), routes: sections[id]!.routes.sorted()))
        }
        return out.isEmpty ? nil : out
    }

    private static func serviceEntryVirtualHosts(_ ns: String, _ name: String, _ ctx: TranslationContext) -> Set<String> {
        guard let se = ctx.store.serviceEntries.first(where: { $0.namespace == ns && $0.name == name }) else { return [] }
        return Set(se.spec.hosts.flatMap { ctx.vhostsByService[HostNames.fqdn($0, namespace: ns)] ?? [] })
    }

    /// `match[].mode`: CLIENT (outbound, gateway), SERVER (inbound); none or both: everywhere.
    /// Returns nil when the modes select no listener of this proxy.
    private static func modeAttachment(_ modes: [String], _ ctx: TranslationContext) -> PluginAttachment?? {
        if modes.isEmpty || modes.contains(where: { $0 == "CLIENT_AND_SERVER" || $0 == "UNDEFINED" }) { return .some(nil) }
        var listeners: [String] = []
        if modes.contains("CLIENT") { listeners += ctx.outboundListeners }
        if modes.contains("SERVER") { listeners += ctx.inboundListeners }
        return listeners.isEmpty ? nil : .some(PluginAttachment(listeners: listeners.sorted()))
    }
}
