import Foundation
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// A Lua plugin's parsed config: `{name?, inlineCode, failStrategy?, limits?: {instructions,
/// memoryBytes}, pluginConfig?}`.
public struct LuaPluginConfig: Sendable {
    public enum FailStrategy: String, Sendable {
        case failOpen = "FAIL_OPEN"
        case failClose = "FAIL_CLOSE"
    }

    public let name: String
    public let script: LuaScript
    public let failStrategy: FailStrategy
    public let limits: LuaLimits
    public let pluginConfig: JSONValue?
    /// Loop-stats keys, built once.
    let executionsKey: String
    let errorsKey: String
    let timeKey: String

    public init(name: String, script: LuaScript, failStrategy: FailStrategy = .failOpen,
                limits: LuaLimits = LuaLimits(), pluginConfig: JSONValue? = nil) {
        self.name = name
        self.script = script
        self.failStrategy = failStrategy
        self.limits = limits
        self.pluginConfig = pluginConfig
        let label = "{plugin=\"\(name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"}"
        executionsKey = "meshd_lua_executions_total" + label
        errorsKey = "meshd_lua_errors_total" + label
        timeKey = "meshd_lua_time_us_total" + label
    }

    /// Parses a filter config; errors name the field, and a syntax error its Lua line.
    public init(config: JSONValue?) throws {
        guard let config, config.objectValue != nil else {
            throw ConfigError(path: "", reason: "meshd.lua needs a config map with inlineCode")
        }
        let name = try Self.string(config["name"], "name") ?? "lua"
        guard let code = try Self.string(config["inlineCode"], "inlineCode") else {
            throw ConfigError(path: "inlineCode", reason: "required")
        }
        let strategy = try Self.failStrategy(try Self.string(config["failStrategy"], "failStrategy"))
        var limits = LuaLimits()
        if let l = config["limits"] {
            guard l.objectValue != nil else { throw ConfigError(path: "limits", reason: "must be a map") }
            if let n = try Self.positive(l["instructions"], "limits.instructions") { limits.instructions = n }
            if let n = try Self.positive(l["memoryBytes"], "limits.memoryBytes") { limits.memoryBytes = n }
        }
        self.init(name: name, script: try Self.compile(code, name: name, path: "inlineCode"), failStrategy: strategy,
                  limits: limits, pluginConfig: config["pluginConfig"])
    }

    /// A `luaPlugins` entry; error paths are relative to the entry.
    public init(plugin p: LuaPlugin) throws {
        guard !p.name.isEmpty else { throw ConfigError(path: "name", reason: "required") }
        let strategy = try Self.failStrategy(p.failStrategy)
        var limits = LuaLimits()
        if let n = p.limits?.instructions {
            guard n >= 1 else { throw ConfigError(path: "limits.instructions", reason: "must be a positive integer") }
            limits.instructions = n
        }
        if let n = p.limits?.memoryBytes {
            guard n >= 1 else { throw ConfigError(path: "limits.memoryBytes", reason: "must be a positive integer") }
            limits.memoryBytes = n
        }
        self.init(name: p.name, script: try Self.compile(p.inlineCode, name: p.name, path: "inlineCode"),
                  failStrategy: strategy, limits: limits, pluginConfig: p.pluginConfig)
    }

    /// The same plugin running other, already compiled code (a route's `sourceCode`).
    func replacingScript(_ script: LuaScript) -> LuaPluginConfig {
        LuaPluginConfig(name: name, script: script, failStrategy: failStrategy, limits: limits, pluginConfig: pluginConfig)
    }

    /// Equal keys mean the same code with the same settings: one version serves both.
    var versionKey: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let context = pluginConfig.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? "-"
        return [name, failStrategy.rawValue, String(limits.instructions), String(limits.memoryBytes), context,
                script.source].joined(separator: "\u{0}")
    }

    static func compile(_ code: String, name: String, path: String) throws -> LuaScript {
        do { return try LuaScript(source: code, name: name) } catch let e as LuaCompileError {
            throw ConfigError(path: path, reason: e.description)
        }
    }

    private static func failStrategy(_ s: String?) throws -> FailStrategy {
        guard let s else { return .failOpen }
        guard let parsed = FailStrategy(rawValue: s) else {
            throw ConfigError(path: "failStrategy", reason: "must be FAIL_OPEN or FAIL_CLOSE, not '\(s)'")
        }
        return parsed
    }

    private static func string(_ v: JSONValue?, _ path: String) throws -> String? {
        guard let v else { return nil }
        guard let s = v.stringValue else { throw ConfigError(path: path, reason: "must be a string") }
        return s
    }

    private static func positive(_ v: JSONValue?, _ path: String) throws -> Int? {
        guard let v else { return nil }
        guard case .number(let n) = v, n >= 1, n <= 1e15, n == n.rounded() else {
            throw ConfigError(path: path, reason: "must be a positive integer")
        }
        return Int(n)
    }
}

/// One version of a plugin: its code and settings, and one VM per event loop, made on first
/// use on that loop. A config swap that leaves a plugin as it was keeps its version (and
/// the VMs' globals); a changed plugin is a new version, and streams that started on the
/// old one finish there.
public final class LuaPluginVersion: Sendable {
    /// Holds a loop's VM; only that loop ever touches it, so sharing the box is safe.
    private final class VMBox: @unchecked Sendable {
        let vm: LuaVM?
        init(_ vm: LuaVM?) { self.vm = vm }
    }

    public let config: LuaPluginConfig
    private let vms = NIOLockedValueBox<[ObjectIdentifier: VMBox]>([:])

    public init(config: LuaPluginConfig) {
        self.config = config
    }

    /// A version whose VM on `loop` is given (`meshd plugin test` builds it with its own logger).
    init(config: LuaPluginConfig, vm: LuaVM, on loop: EventLoop) {
        self.config = config
        vms.withLockedValue { $0[ObjectIdentifier(loop)] = VMBox(vm) }
    }

    /// The VM of `loop`, made on first use. Must be called on `loop`.
    func vm(for loop: EventLoop) -> LuaVM? {
        let key = ObjectIdentifier(loop)
        if let box = vms.withLockedValue({ $0[key] }) { return box.vm }
        let box = VMBox(LuaVM(plugin: config))
        vms.withLockedValue { $0[key] = box }
        return box.vm
    }
}

/// What a route says about one Lua plugin (Envoy's LuaPerRoute).
enum LuaRouteOverride: Sendable {
    case disabled
    /// The route's `sourceCode`, compiled once per snapshot.
    case replaced(LuaPluginVersion)
}

/// A route's `perFilterConfig` entry for Lua (under `meshd.lua` or a plugin's name):
/// `{disabled: true}` or `{sourceCode: "..."}`, and `metadata` for `handle:metadata()`.
struct LuaPerRouteConfig: Sendable {
    var disabled = false
    var script: LuaScript?
    /// `disabled` or `sourceCode` was given: this entry decides (an entry under a plugin's
    /// name that decides wins over the `meshd.lua` one).
    var decides = false

    static let fields = ["disabled", "sourceCode", "metadata"]

    /// Validates an entry; paths are relative to it, syntax errors name the Lua line.
    init(_ value: JSONValue, key: String) throws {
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

    enum Resolution {
        case bypass
        case run(LuaVM)
        /// The VM could not be made (out of memory): the fail strategy decides.
        case unavailable
    }

    let version: LuaPluginVersion
    /// nil: any virtual host / any route.
    let virtualHosts: Set<String>?
    let routeNames: Set<String>?
    /// Per-route overrides by `CompiledRoute.id`.
    let overrides: [Int: LuaRouteOverride]
    /// Whether running depends on the route at all.
    let needsRoute: Bool

    public var plugin: LuaPluginConfig { version.config }

    init(version: LuaPluginVersion, virtualHosts: Set<String>? = nil, routeNames: Set<String>? = nil,
         overrides: [Int: LuaRouteOverride] = [:]) {
        self.version = version
        self.virtualHosts = virtualHosts
        self.routeNames = routeNames
        self.overrides = overrides
        needsRoute = virtualHosts != nil || routeNames != nil || !overrides.isEmpty
    }

    public convenience init(plugin: LuaPluginConfig) {
        self.init(version: LuaPluginVersion(config: plugin))
    }

    public static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        LuaFilterFactory(plugin: try LuaPluginConfig(config: config))
    }

    public func makeFilter(stream: StreamControl) -> HTTPFilter {
        LuaFilter(factory: self, stream: stream)
    }

    /// The VM of `loop` for the plugin's own code, made on first use. Must be called on `loop`.
    func vm(for loop: EventLoop) -> LuaVM? { version.vm(for: loop) }

    /// Whether the plugin runs for a stream on `route`, and in which VM. Must be called on `loop`.
    func resolve(route: SelectedRoute?, loop: EventLoop) -> Resolution {
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
