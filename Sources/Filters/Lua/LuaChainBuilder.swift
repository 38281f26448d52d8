import MeshAPI
import NIOConcurrencyHelpers
import FilterHost
import Transport
import LuaRuntime

/// The Lua part of building a snapshot: compiles each `luaPlugins` entry once, validates
/// the routes' Lua `perFilterConfig`, and hands each listener its plugins in chain order.
/// Runs off the data path (config load or swap). A plugin whose code and settings did not
/// change keeps its version from the previous snapshot, VMs and all.
package struct LuaChainBuilder: ChainExtensionBuild {
    /// A plugin ready for chains: its factory and where it may attach.
    package struct Entry {
        package let plugin: LuaPlugin
        package let factory: LuaFilterFactory
        package let rank: Int
    }

    private let previous: [String: LuaPluginVersion]
    /// Every version this snapshot uses, by `LuaPluginConfig.versionKey`.
    package private(set) var versions: [String: LuaPluginVersion] = [:]
    /// Validated Lua entries of route `perFilterConfig`, by route id, then by key.
    private var perRoute: [Int: [String: LuaPerRouteConfig]] = [:]
    /// In chain order: phase, then descending priority, then name.
    package private(set) var plugins: [Entry] = []
    /// Virtual host and route names per route config, for attachment checks.
    private var hostNames: [String: Set<String>] = [:]
    private var routeNames: [String: Set<String>] = [:]

    package static let phases = ["AUTHN": 0, "AUTHZ": 1, "STATS": 2, "UNSPECIFIED": 3, "UNSPECIFIED_PHASE": 3]

    package init(bootstrap b: Bootstrap, tables: [String: RouteTable], previous: [String: LuaPluginVersion]) throws {
        self.previous = previous
        for rc in b.routeConfigs {
            hostNames[rc.name] = Set(rc.virtualHosts.map(\.name))
            routeNames[rc.name] = Set(rc.virtualHosts.flatMap { $0.routes.compactMap(\.name) })
        }
        // Keys a route may use for Lua: the common one and every Lua filter's name.
        var keys: Set<String> = [LuaFilterFactory.name]
        for p in b.luaPlugins { keys.insert(p.name) }
        for l in b.listeners {
            for f in l.httpFilters ?? [] where f.name == LuaFilterFactory.name {
                keys.insert(f.config?["name"]?.stringValue ?? "lua")
            }
        }
        try validateRoutes(b, tables: tables, keys: keys)

        let listenerNames = Set(b.listeners.map(\.name))
        let allHosts = hostNames.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        let allRoutes = routeNames.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        var seen = Set<String>()
        var entries: [Entry] = []
        for (i, p) in b.luaPlugins.enumerated() {
            let path = "luaPlugins[\(i)]"
            guard seen.insert(p.name).inserted else {
                throw ConfigError(path: path + ".name", reason: "duplicate plugin '\(p.name)'")
            }
            guard let rank = Self.phases[p.phase ?? "UNSPECIFIED"] else {
                throw ConfigError(path: path + ".phase", reason: "must be AUTHN, AUTHZ, STATS or UNSPECIFIED, not '\(p.phase ?? "")'")
            }
            try Self.check(p.attachTo?.listeners, known: listenerNames, what: "listener", at: path + ".attachTo.listeners")
            try Self.check(p.attachTo?.virtualHosts, known: allHosts, what: "virtual host", at: path + ".attachTo.virtualHosts")
            try Self.check(p.attachTo?.routes, known: allRoutes, what: "route", at: path + ".attachTo.routes")
            let config: LuaPluginConfig
            do { config = try LuaPluginConfig(plugin: p) } catch let e as ConfigError {
                throw ConfigError(path: path + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
            }
            let factory = LuaFilterFactory(version: version(config), virtualHosts: p.attachTo?.virtualHosts.map(Set.init),
                                           routeNames: p.attachTo?.routes.map(Set.init), overrides: overrides(for: config))
            entries.append(Entry(plugin: p, factory: factory, rank: rank))
        }
        plugins = Self.ordered(entries)
    }

    /// Chain order: AUTHN, AUTHZ, STATS, UNSPECIFIED; then descending priority; then name.
    package static func ordered(_ entries: [Entry]) -> [Entry] {
        entries.sorted { a, b in
            if a.rank != b.rank { return a.rank < b.rank }
            let pa = a.plugin.priority ?? 0, pb = b.plugin.priority ?? 0
            if pa != pb { return pa > pb }
            return a.plugin.name < b.plugin.name
        }
    }

    /// The plugins for a listener's chain, after its `httpFilters`: those attached to it
    /// whose virtual hosts / routes (if named) exist in its route config.
    package func plugins(for listener: Listener) -> [HTTPFilterFactory] {
        let hosts = hostNames[listener.routeConfig] ?? []
        let routes = routeNames[listener.routeConfig] ?? []
        return plugins.filter { e in
            let a = e.plugin.attachTo
            if let l = a?.listeners, !l.contains(listener.name) { return false }
            if let h = a?.virtualHosts, hosts.isDisjoint(with: h) { return false }
            if let r = a?.routes, routes.isDisjoint(with: r) { return false }
            return true
        }.map(\.factory)
    }

    package mutating func bind(_ factory: HTTPFilterFactory) -> HTTPFilterFactory {
        if let lua = factory as? LuaFilterFactory { return bind(lua) }
        if let host = factory as? LuaHostingFactory { return host.bindingLua { version($0) } }
        return factory
    }

    package func appended(for listener: Listener) -> [HTTPFilterFactory] { plugins(for: listener) }

    package var retained: any Sendable { versions }

    /// A `meshd.lua` filter from `httpFilters`: shares versions and gets its route overrides.
    package mutating func bind(_ factory: LuaFilterFactory) -> LuaFilterFactory {
        LuaFilterFactory(version: version(factory.plugin), virtualHosts: factory.virtualHosts,
                         routeNames: factory.routeNames, overrides: overrides(for: factory.plugin))
    }

    // MARK: helpers

    /// The version for `config`: this snapshot's, else the previous snapshot's, else new.
    private mutating func version(_ config: LuaPluginConfig) -> LuaPluginVersion {
        let key = config.versionKey
        if let v = versions[key] { return v }
        let v = previous[key] ?? LuaPluginVersion(config: config, library: LuaFilterLibrary.shared)
        versions[key] = v
        return v
    }

    /// What each route says about the plugin: its own entry if it decides (`disabled` or
    /// `sourceCode` given), else the `meshd.lua` entry.
    private mutating func overrides(for config: LuaPluginConfig) -> [Int: LuaRouteOverride] {
        var result: [Int: LuaRouteOverride] = [:]
        for (id, entries) in perRoute {
            let specific = entries[config.name]
            guard let entry = specific?.decides == true ? specific : entries[LuaFilterFactory.name] ?? specific else { continue }
            if entry.disabled {
                result[id] = .disabled
            } else if let script = entry.script {
                let code = LuaScript(checked: script.source, name: config.name)
                result[id] = .replaced(version(config.replacingScript(code)))
            }
        }
        return result
    }

    private mutating func validateRoutes(_ b: Bootstrap, tables: [String: RouteTable], keys: Set<String>) throws {
        for (ci, rc) in b.routeConfigs.enumerated() {
            guard let table = tables[rc.name] else { continue }
            for (hi, vh) in rc.virtualHosts.enumerated() {
                for (ri, r) in vh.routes.enumerated() {
                    guard let pfc = r.perFilterConfig else { continue }
                    var entries: [String: LuaPerRouteConfig] = [:]
                    for key in pfc.keys.sorted() where keys.contains(key) {
                        let path = "routeConfigs[\(ci)].virtualHosts[\(hi)].routes[\(ri)].perFilterConfig.\(key)"
                        do { entries[key] = try LuaPerRouteConfig(pfc[key]!, key: key) } catch let e as ConfigError {
                            throw ConfigError(path: path + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
                        }
                    }
                    if !entries.isEmpty { perRoute[table.compiledRoute(host: hi, index: ri).id] = entries }
                }
            }
        }
    }

    private static func check(_ names: [String]?, known: Set<String>, what: String, at path: String) throws {
        for (i, n) in (names ?? []).enumerated() where !known.contains(n) {
            throw ConfigError(path: "\(path)[\(i)]", reason: "unknown \(what) '\(n)'")
        }
    }
}

/// A native filter's factory that runs Lua plugins of its own (a CUSTOM policy's Lua
/// authorizer): its plugins share this snapshot's versions, and the previous one's VMs.
protocol LuaHostingFactory: HTTPFilterFactory {
    func bindingLua(_ version: (LuaPluginConfig) -> LuaPluginVersion) -> HTTPFilterFactory
}

/// Lua's part in building a snapshot: `luaPlugins`, shared versions, route overrides.
struct LuaChainExtension: ChainExtension {
    func prepare(_ bootstrap: Bootstrap, routeTables: [String: RouteTable],
                 previous: (any Sendable)?) throws -> any ChainExtensionBuild {
        try LuaChainBuilder(bootstrap: bootstrap, tables: routeTables, previous: previous as? [String: LuaPluginVersion] ?? [:])
    }

    func gauges() -> [String: Int] { ["meshd_lua_vms": LuaVM.live.withLockedValue { $0 }] }
}
