import LuaRuntime
import FilterHost
import MeshAPI
import NIOCore
import Transport

/// What a route says about one Lua plugin (Envoy's LuaPerRoute).
package enum LuaRouteOverride: Sendable {
    case disabled
    /// The route's `sourceCode`, compiled once per snapshot.
    case replaced(LuaPluginVersion)
}

/// A route's `perFilterConfig` entry for Lua (under `meshd.lua` or a plugin's name):
/// `{disabled: true}` or `{sourceCode: "..."}`, and `metadata` for `handle:metadata()`.
package struct LuaPerRouteConfig: Sendable {
    package var disabled = false
    package var script: LuaScript?
    /// `disabled` or `sourceCode` was given: this entry decides (an entry under a plugin's
    /// name that decides wins over the `meshd.lua` one).
    package var decides = false

    package static let fields = ["disabled", "sourceCode", "metadata"]

    /// Validates an entry; paths are relative to it, syntax errors name the Lua line.
    package init(_ value: JSONValue, key: String) throws {
        guard let object = value.objectValue else { throw ConfigError(path: "", reason: "must be a map") }
        for k in object.keys.sorted() where !Self.fields.contains(k) {
            throw ConfigError(path: k, reason: "unknown field (known: \(Self.fields.joined(separator: ", ")))")
        }
        if let d = object["disabled"] {
            guard case .bool(let b) = d else { throw ConfigError(path: "disabled", reason: "must be true or false") }
            disabled = b
            decides = true
        }
        if let s = object["sourceCode"] {
            guard let code = s.stringValue else { throw ConfigError(path: "sourceCode", reason: "must be a string") }
            script = try LuaPluginConfig.compile(code, name: key, path: "sourceCode")
            decides = true
        }
        if disabled && script != nil {
            throw ConfigError(path: "", reason: "disabled and sourceCode exclude each other")
        }
        if let m = object["metadata"], m.objectValue == nil {
            throw ConfigError(path: "metadata", reason: "must be a map")
        }
    }
}

/// Makes LuaFilters for one place in a chain: a plugin version, where it is attached, and
/// what routes say about it. The filter decides at the request headers whether it runs.
public final class LuaFilterFactory: HTTPFilterFactory {
    public static let name = "meshd.lua"

    package enum Resolution {
        case bypass
        case run(LuaVM)
        /// The VM could not be made (out of memory): the fail strategy decides.
        case unavailable
    }

    package let version: LuaPluginVersion
    /// nil: any virtual host / any route.
    package let virtualHosts: Set<String>?
    package let routeNames: Set<String>?
    /// Per-route overrides by `CompiledRoute.id`.
    package let overrides: [Int: LuaRouteOverride]
    /// Whether running depends on the route at all.
    package let needsRoute: Bool

    public var plugin: LuaPluginConfig { version.config }

    package init(version: LuaPluginVersion, virtualHosts: Set<String>? = nil, routeNames: Set<String>? = nil,
         overrides: [Int: LuaRouteOverride] = [:]) {
        self.version = version
        self.virtualHosts = virtualHosts
        self.routeNames = routeNames
        self.overrides = overrides
        needsRoute = virtualHosts != nil || routeNames != nil || !overrides.isEmpty
    }

    public convenience init(plugin: LuaPluginConfig) {
        self.init(version: LuaPluginVersion(config: plugin, library: LuaFilterLibrary.shared))
    }

    public static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        LuaFilterFactory(plugin: try LuaPluginConfig(config: config))
    }

    public func makeFilter(stream: StreamControl) -> HTTPFilter {
        // Without route conditions the stream runs in the version's VM of this loop, which
        // keeps the filters of streams that ended cleanly. Only a VM this thread already
        // looked up is asked: making one is for when the plugin runs.
        guard !needsRoute else { return LuaFilter(factory: self, stream: stream) }
        guard let vm = version.cachedVM(for: stream.eventLoop) else {
            return LuaFilter(factory: self, stream: stream, reusable: true)
        }
        let filter: LuaFilter
        if let spare = LuaVMHost.of(vm).takeSpare() {
            spare.reuse(factory: self, stream: stream)
            filter = spare
        } else {
            filter = LuaFilter(factory: self, stream: stream, reusable: true)
        }
        // That VM is what `resolve` would answer at the request headers: decided now.
        filter.decide(vm)
        return filter
    }

    /// The VM of `loop` for the plugin's own code, made on first use. Must be called on `loop`.
    package func vm(for loop: EventLoop) -> LuaVM? { version.vm(for: loop) }

    /// Whether the plugin runs for a stream on `route`, and in which VM. Must be called on `loop`.
    package func resolve(route: SelectedRoute?, loop: EventLoop) -> Resolution {
        var chosen = version
        if needsRoute {
            if virtualHosts != nil || routeNames != nil {
                guard let route else { return .bypass }
                if let virtualHosts, !virtualHosts.contains(route.virtualHost) { return .bypass }
                if let routeNames, !routeNames.contains(route.name) { return .bypass }
            }
            if let route, let o = overrides[route.compiled.id] {
                switch o {
                case .disabled: return .bypass
                case .replaced(let v): chosen = v
                }
            }
        }
        guard let vm = chosen.vm(for: loop) else { return .unavailable }
        return .run(vm)
    }
}
