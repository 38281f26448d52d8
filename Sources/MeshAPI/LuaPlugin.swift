/// A Lua plugin as the proxy receives it: resolved code plus where it applies. The control
/// plane makes these from Istio's TrafficExtension and meshd's LuaPlugin resources; a static
/// bootstrap may list them directly under `luaPlugins`.
public struct LuaPlugin: Codable, Sendable, Equatable {
    public var name: String
    /// AUTHN, AUTHZ, STATS or UNSPECIFIED (default): chain order is by phase in that order,
    /// then by descending priority, then by name.
    public var phase: String?
    public var priority: Int?
    /// FAIL_OPEN (default, Envoy's behaviour) or FAIL_CLOSE (answer 500; 503 when a limit ended the run).
    public var failStrategy: String?
    public var inlineCode: String
    /// Read by the script as `handle:filterContext()`.
    public var pluginConfig: JSONValue?
    public var limits: LuaPluginLimits?
    /// What the script may `require`: module name → Lua code (the plugin's own sources only).
    public var modules: [String: String]?
    /// Where the plugin runs; nil means every route of every listener.
    public var attachTo: PluginAttachment?

    public init(name: String, phase: String? = nil, priority: Int? = nil, failStrategy: String? = nil,
                inlineCode: String, pluginConfig: JSONValue? = nil, limits: LuaPluginLimits? = nil,
                modules: [String: String]? = nil, attachTo: PluginAttachment? = nil) {
        self.name = name
        self.phase = phase
        self.priority = priority
        self.failStrategy = failStrategy
        self.inlineCode = inlineCode
        self.pluginConfig = pluginConfig
        self.limits = limits
        self.modules = modules
        self.attachTo = attachTo
    }
}

/// What a plugin may use; docs/reliability.md lists the defaults.
public struct LuaPluginLimits: Codable, Sendable, Equatable {
    /// Lua VM instructions per invocation (default 10,000,000).
    public var instructions: Int?
    /// Memory per plugin VM (default 16 MiB).
    public var memoryBytes: Int?
    /// Milliseconds a plugin may hold its event loop in one go (default 100).
    public var maxRunMs: Int?
    /// httpCall()s in flight per plugin per event loop (default 256).
    public var maxPendingCalls: Int?
    /// httpCall()s in flight per stream (default 16).
    public var maxPendingCallsPerStream: Int?
    /// Bytes of dynamic metadata the plugin may set per stream (default 64 KiB).
    public var maxDynamicMetadataBytes: Int?
    /// Capacity in bytes of the `meshd.shared` dictionaries it uses, by name (default 1 MiB).
    public var sharedDicts: [String: Int]?

    public init(instructions: Int? = nil, memoryBytes: Int? = nil, maxRunMs: Int? = nil, maxPendingCalls: Int? = nil,
                maxPendingCallsPerStream: Int? = nil, maxDynamicMetadataBytes: Int? = nil, sharedDicts: [String: Int]? = nil) {
        self.instructions = instructions
        self.memoryBytes = memoryBytes
        self.maxRunMs = maxRunMs
        self.maxPendingCalls = maxPendingCalls
        self.maxPendingCallsPerStream = maxPendingCallsPerStream
        self.maxDynamicMetadataBytes = maxDynamicMetadataBytes
        self.sharedDicts = sharedDicts
    }
}

/// Each given list narrows where a plugin runs (all given lists must match); a nil list
/// matches anything. Names are listener names, virtual host names (a VirtualService
/// translates to one virtual host) and route names (an http route's `name`).
public struct PluginAttachment: Codable, Sendable, Equatable {
    public var listeners: [String]?
    public var virtualHosts: [String]?
    public var routes: [String]?

    public init(listeners: [String]? = nil, virtualHosts: [String]? = nil, routes: [String]? = nil) {
        self.listeners = listeners
        self.virtualHosts = virtualHosts
        self.routes = routes
    }
}
