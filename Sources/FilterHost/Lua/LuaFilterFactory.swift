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
        var strategy = FailStrategy.failOpen
        if let s = try Self.string(config["failStrategy"], "failStrategy") {
            guard let parsed = FailStrategy(rawValue: s) else {
                throw ConfigError(path: "failStrategy", reason: "must be FAIL_OPEN or FAIL_CLOSE, not '\(s)'")
            }
            strategy = parsed
        }
        var limits = LuaLimits()
        if let l = config["limits"] {
            guard l.objectValue != nil else { throw ConfigError(path: "limits", reason: "must be a map") }
            if let n = try Self.positive(l["instructions"], "limits.instructions") { limits.instructions = n }
            if let n = try Self.positive(l["memoryBytes"], "limits.memoryBytes") { limits.memoryBytes = n }
        }
        let script: LuaScript
        do { script = try LuaScript(source: code, name: name) } catch let e as LuaCompileError {
            throw ConfigError(path: "inlineCode", reason: e.description)
        }
        self.init(name: name, script: script, failStrategy: strategy, limits: limits, pluginConfig: config["pluginConfig"])
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

/// Makes LuaFilters; owns one VM per event loop, created on first use on that loop.
public final class LuaFilterFactory: HTTPFilterFactory {
    public static let name = "meshd.lua"

    /// Holds a loop's VM; only that loop ever touches it, so sharing the box is safe.
    private final class VMBox: @unchecked Sendable {
        let vm: LuaVM?
        init(_ vm: LuaVM?) { self.vm = vm }
    }

    public let plugin: LuaPluginConfig
    private let vms = NIOLockedValueBox<[ObjectIdentifier: VMBox]>([:])

    public init(plugin: LuaPluginConfig) {
        self.plugin = plugin
    }

    public static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        LuaFilterFactory(plugin: try LuaPluginConfig(config: config))
    }

    public func makeFilter(stream: StreamControl) -> HTTPFilter {
        guard let vm = vm(for: stream.eventLoop) else { return LuaUnavailableFilter(plugin: plugin, stream: stream) }
        return LuaFilter(vm: vm, stream: stream)
    }

    /// The VM of `loop`, made on first use. Must be called on `loop`.
    func vm(for loop: EventLoop) -> LuaVM? {
        let key = ObjectIdentifier(loop)
        if let box = vms.withLockedValue({ $0[key] }) { return box.vm }
        let box = VMBox(LuaVM(plugin: plugin))
        vms.withLockedValue { $0[key] = box }
        return box.vm
    }
}

/// Stands in when a VM could not be created (out of memory): follows the fail strategy.
final class LuaUnavailableFilter: HTTPFilter {
    let plugin: LuaPluginConfig
    unowned let stream: StreamControl

    init(plugin: LuaPluginConfig, stream: StreamControl) {
        self.plugin = plugin
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        guard plugin.failStrategy == .failClose else { return .continue }
        stream.sendLocalReply(status: 500, body: "Internal Server Error", headers: [:], flag: nil, from: self)
        return .stop
    }
}
