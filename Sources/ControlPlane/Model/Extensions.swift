import MeshAPI

/// Plugin phases in Istio's names; meshd's proxy uses AUTHN, AUTHZ, STATS, UNSPECIFIED.
enum PluginPhase {
    static let names = ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]
    /// TrafficExtension's ExecutionPhase, in both the short and the proto form.
    static let executionNames = names + ["UNSPECIFIED", "EXECUTION_PHASE_UNSPECIFIED", "EXECUTION_PHASE_AUTHN",
                                         "EXECUTION_PHASE_AUTHZ", "EXECUTION_PHASE_STATS"]

    /// The proxy's name for a phase.
    static func proxyName(_ phase: String?) -> String? {
        guard let phase else { return nil }
        let short = phase.hasPrefix("EXECUTION_PHASE_") ? String(phase.dropFirst(16)) : phase
        return short == "UNSPECIFIED_PHASE" || short == "UNSPECIFIED" ? nil : short
    }
}

/// `match[]`: which traffic a plugin sees, by direction and port.
public struct TrafficSelector: NodeDecodable, Equatable {
    public var mode: String?
    public var ports: [PortSelector]

    init(_ r: ObjectReader) {
        mode = r.enumeration("mode", ["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"])
        ports = r.objects("ports")
    }
}

/// meshd's LuaPlugin (extensions.meshd.io/v1alpha1), modelled on Istio's WasmPlugin.
/// The source is one of `inline`, `file` (relative to the YAML file) or `url` (+ `sha256`);
/// the store reads it at load time into `code`.
public struct LuaPluginSpec: NodeDecodable, Equatable {
    public static let failStrategies = ["FAIL_CLOSE", "FAIL_OPEN"]

    public struct Limits: NodeDecodable, Equatable {
        public var instructions: Int?
        public var memoryBytes: Int?
        public var maxRunMs: Int?
        public var maxPendingCalls: Int?
        public var maxPendingCallsPerStream: Int?
        public var maxDynamicMetadataBytes: Int?
        public var sharedDicts: [String: Int]?

        init(_ r: ObjectReader) {
            instructions = r.int("instructions")
            memoryBytes = r.int("memoryBytes")
            maxRunMs = r.int("maxRunMs")
            maxPendingCalls = r.int("maxPendingCalls")
            maxPendingCallsPerStream = r.int("maxPendingCallsPerStream")
            maxDynamicMetadataBytes = r.int("maxDynamicMetadataBytes")
            let dicts = r.intMap("sharedDicts")
            sharedDicts = dicts.isEmpty ? nil : dicts
        }

        /// The proxy's form.
        public var proxyLimits: LuaPluginLimits {
            LuaPluginLimits(instructions: instructions, memoryBytes: memoryBytes, maxRunMs: maxRunMs,
                            maxPendingCalls: maxPendingCalls, maxPendingCallsPerStream: maxPendingCallsPerStream,
                            maxDynamicMetadataBytes: maxDynamicMetadataBytes, sharedDicts: sharedDicts)
        }
    }

    public var selector: LabelSelector?
    public var targetRefs: [PolicyTargetReference]
    public var phase: String?
    public var priority: Int?
    public var failStrategy: String?
    public var pluginConfig: JSONValue?
    public var inline: String?
    public var file: String?
    public var url: String?
    public var sha256: String?
    public var limits: Limits?
    public var match: [TrafficSelector]
    /// Modules the code may `require`: name → Lua code, inline (the plugin's own sources only).
    public var modules: [String: String]
    /// The Lua source, resolved when the resource was loaded; nil when it could not be.
    public var code: String?

    init(_ r: ObjectReader) {
        selector = r.object("selector")
        targetRefs = r.objects("targetRefs")
        phase = r.enumeration("phase", PluginPhase.names)
        priority = r.int("priority")
        failStrategy = r.enumeration("failStrategy", Self.failStrategies)
        pluginConfig = r.json("pluginConfig")
        inline = r.string("inline")
        file = r.string("file")
        url = r.string("url")
        sha256 = r.string("sha256")
        limits = r.object("limits")
        match = r.objects("match")
        modules = r.stringMap("modules")
        code = inline
    }

    var sourceCount: Int { [inline, file, url].compactMap { $0 }.count }
}

/// Istio's TrafficExtension (extensions.istio.io/v1alpha1). meshd runs `lua.inlineCode`;
/// `wasm` is parsed and validated but not run.
public struct TrafficExtension: NodeDecodable, Equatable {
    public struct Lua: NodeDecodable, Equatable {
        public var inlineCode: String?

        init(_ r: ObjectReader) {
            inlineCode = r.string("inlineCode")
        }
    }

    public struct Wasm: NodeDecodable, Equatable {
        public var url: String?
        public var sha256: String?
        public var imagePullPolicy: String?
        public var imagePullSecret: String?
        public var verificationKey: String?
        public var pluginConfig: JSONValue?
        public var pluginName: String?
        public var failStrategy: String?
        public var vmConfig: JSONValue?
        public var type: String?

        init(_ r: ObjectReader) {
            url = r.string("url")
            sha256 = r.string("sha256")
            imagePullPolicy = r.enumeration("imagePullPolicy", ["UNSPECIFIED_POLICY", "IfNotPresent", "Always"])
            imagePullSecret = r.string("imagePullSecret")
            verificationKey = r.string("verificationKey")
            pluginConfig = r.json("pluginConfig")
            pluginName = r.string("pluginName")
            failStrategy = r.enumeration("failStrategy", ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"])
            vmConfig = r.json("vmConfig")
            type = r.enumeration("type", ["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"])
        }
    }

    public var selector: LabelSelector?
    public var targetRefs: [PolicyTargetReference]
    public var phase: String?
    public var priority: Int?
    public var match: [TrafficSelector]
    public var wasm: Wasm?
    public var lua: Lua?

    init(_ r: ObjectReader) {
        selector = r.object("selector")
        targetRefs = r.objects("targetRefs")
        phase = r.enumeration("phase", PluginPhase.executionNames)
        priority = r.int("priority")
        match = r.objects("match")
        wasm = r.object("wasm")
        lua = r.object("lua")
    }
}
