import CLuaGuard
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// A Lua plugin's parsed config: `{name?, inlineCode, failStrategy?, limits?: {instructions,
/// memoryBytes, maxRunMs, maxPendingCalls, maxPendingCallsPerStream, maxDynamicMetadataBytes,
/// sharedDicts}, pluginConfig?, modules?: {name: code}}`.
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
    /// What `require(name)` loads: the plugin's own modules, compiled here, never read from disk.
    public let modules: [String: LuaScript]
    /// Loop-stats keys, built once.
    package let executionsKey: String
    package let errorsKey: String
    package let timeKey: String

    public init(name: String, script: LuaScript, failStrategy: FailStrategy = .failOpen,
                limits: LuaLimits = LuaLimits(), pluginConfig: JSONValue? = nil, modules: [String: LuaScript] = [:]) {
        self.name = name
        self.script = script
        self.failStrategy = failStrategy
        self.limits = limits
        self.pluginConfig = pluginConfig
        self.modules = modules
        let label = "{plugin=\"\(name.replacing("\\", with: "\\\\").replacing("\"", with: "\\\""))\"}"
        executionsKey = "meshd_lua_executions_total" + label
        errorsKey = "meshd_lua_errors_total" + label
        timeKey = "meshd_lua_time_seconds_total" + label
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
            guard let fields = l.objectValue else { throw ConfigError(path: "limits", reason: "must be a map") }
            for key in fields.keys.sorted() where !Self.limitFields.contains(key) {
                throw ConfigError(path: "limits." + key, reason: "unknown field (known: \(Self.limitFields.joined(separator: ", ")))")
            }
            for (key, path) in Self.countLimits {
                if let n = try Self.positive(l[key], "limits." + key) { limits[keyPath: path] = n }
            }
            if let dicts = l["sharedDicts"] {
                guard let entries = dicts.objectValue else { throw ConfigError(path: "limits.sharedDicts", reason: "must be a map") }
                for (name, v) in entries {
                    limits.sharedDicts[name] = try Self.positive(v, "limits.sharedDicts." + name)
                }
            }
        }
        var sources: [String: String] = [:]
        if let m = config["modules"] {
            guard let object = m.objectValue else { throw ConfigError(path: "modules", reason: "must be a map of module name to Lua code") }
            for (k, v) in object {
                guard let code = v.stringValue else { throw ConfigError(path: "modules.\(k)", reason: "must be a string of Lua code") }
                sources[k] = code
            }
        }
        self.init(name: name, script: try Self.compile(code, name: name, path: "inlineCode"), failStrategy: strategy,
                  limits: limits, pluginConfig: config["pluginConfig"], modules: try Self.compileModules(sources))
    }

    /// A `luaPlugins` entry; error paths are relative to the entry.
    public init(plugin p: LuaPlugin) throws {
        guard !p.name.isEmpty else { throw ConfigError(path: "name", reason: "required") }
        let strategy = try Self.failStrategy(p.failStrategy)
        var limits = LuaLimits()
        if let l = p.limits {
            let given = ["instructions": l.instructions, "memoryBytes": l.memoryBytes, "maxRunMs": l.maxRunMs,
                         "maxPendingCalls": l.maxPendingCalls, "maxPendingCallsPerStream": l.maxPendingCallsPerStream,
                         "maxDynamicMetadataBytes": l.maxDynamicMetadataBytes].compactMapValues { $0 }
            for (key, path) in Self.countLimits {
                guard let n = given[key] else { continue }
                guard n >= 1 else { throw ConfigError(path: "limits." + key, reason: "must be a positive integer") }
                limits[keyPath: path] = n
            }
            for (name, n) in l.sharedDicts ?? [:] {
                guard n >= 1 else { throw ConfigError(path: "limits.sharedDicts." + name, reason: "must be a positive integer") }
                limits.sharedDicts[name] = n
            }
        }
        self.init(name: p.name, script: try Self.compile(p.inlineCode, name: p.name, path: "inlineCode"),
                  failStrategy: strategy, limits: limits, pluginConfig: p.pluginConfig,
                  modules: try Self.compileModules(p.modules ?? [:]))
    }

    /// The same plugin running other, already compiled code (a route's `sourceCode`), with the same modules.
    package func replacingScript(_ script: LuaScript) -> LuaPluginConfig {
        LuaPluginConfig(name: name, script: script, failStrategy: failStrategy, limits: limits, pluginConfig: pluginConfig,
                        modules: modules)
    }

    /// Compiles each module once; a bad name or a syntax error names the module.
    package static func compileModules(_ sources: [String: String]) throws -> [String: LuaScript] {
        var modules: [String: LuaScript] = [:]
        for name in sources.keys.sorted() {
            guard isModuleName(name) else {
                throw ConfigError(path: "modules.\(name)", reason: "a module name is letters, digits, '_', '-' and '.' (as in require(\"lib.util\"))")
            }
            modules[name] = try compile(sources[name]!, name: name, path: "modules.\(name)")
        }
        return modules
    }

    package static func isModuleName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && name.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45 || c == 46
        }
    }

    /// Equal keys mean the same code with the same settings: one version serves both.
    package var versionKey: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let context = pluginConfig.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? "-"
        let moduleKey = modules.keys.sorted().map { $0 + "\u{1}" + modules[$0]!.source }.joined(separator: "\u{1}")
        return [name, failStrategy.rawValue, limits.key, context, script.source, moduleKey].joined(separator: "\u{0}")
    }

    /// The numeric `limits` fields, by config key.
    package static var countLimits: [(String, WritableKeyPath<LuaLimits, Int>)] {
        [("instructions", \.instructions), ("memoryBytes", \.memoryBytes), ("maxRunMs", \.maxRunMs),
         ("maxPendingCalls", \.maxPendingCalls), ("maxPendingCallsPerStream", \.maxPendingCallsPerStream),
         ("maxDynamicMetadataBytes", \.maxDynamicMetadataBytes)]
    }
    static let limitFields = ["instructions", "memoryBytes", "maxRunMs", "maxPendingCalls", "maxPendingCallsPerStream",
                              "maxDynamicMetadataBytes", "sharedDicts"]

    package static func compile(_ code: String, name: String, path: String) throws -> LuaScript {
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
        package let vm: LuaVM?
        package init(_ vm: LuaVM?) { self.vm = vm }
    }

    public let config: LuaPluginConfig
    /// The host objects every VM of this version gets (from the Lua filter).
    package let library: LuaHostLibrary
    private let vms = NIOLockedValueBox<[ObjectIdentifier: VMBox]>([:])
    /// Names this version in the calling thread's VM cache; never reused, unlike an address.
    private let id: UInt64

    private static let lastID = NIOLockedValueBox<UInt64>(0)

    package init(config: LuaPluginConfig, library: LuaHostLibrary) {
        self.config = config
        self.library = library
        id = Self.lastID.withLockedValue { $0 += 1; return $0 }
    }

    /// A version whose VM on `loop` is given (`meshd plugin test` builds it with its own logger).
    package init(config: LuaPluginConfig, vm: LuaVM, on loop: EventLoop) {
        self.config = config
        self.library = vm.library
        id = Self.lastID.withLockedValue { $0 += 1; return $0 }
        vms.withLockedValue { $0[ObjectIdentifier(loop)] = VMBox(vm) }
    }

    /// The VM of `loop`, made on first use. Must be called on `loop`. Every stream asks: the
    /// thread's small cache answers without the lock the table behind it needs.
    package func vm(for loop: EventLoop) -> LuaVM? {
        if let vm = cachedVM(for: loop) { return vm }
        let key = ObjectIdentifier(loop)
        let loopID = UInt(bitPattern: key)
        let entry = meshd_vm_cache()! + Int(id % UInt64(MESHD_VM_CACHE_ENTRIES))
        let box: VMBox
        if let known = vms.withLockedValue({ $0[key] }) {
            box = known
        } else {
            box = VMBox(LuaVM(plugin: config, library: library))
            vms.withLockedValue { $0[key] = box }
        }
        // The box (and its VM) lives as long as this version, which whoever asks holds.
        if let vm = box.vm {
            entry.pointee = meshd_vm_cache_entry(version: id, loop: loopID, vm: Unmanaged.passUnretained(vm).toOpaque())
        }
        return box.vm
    }

    /// The VM of `loop` if the calling thread's cache holds it: no lock, nothing made.
    package func cachedVM(for loop: EventLoop) -> LuaVM? {
        let loopID = UInt(bitPattern: ObjectIdentifier(loop))
        let entry = meshd_vm_cache()! + Int(id % UInt64(MESHD_VM_CACHE_ENTRIES))
        guard entry.pointee.version == id, entry.pointee.loop == loopID, let vm = entry.pointee.vm else { return nil }
        return Unmanaged<LuaVM>.fromOpaque(vm).takeUnretainedValue()
    }
}
