import CLua
import MeshAPI

/// A Lua syntax error, with the line Lua reported.
public struct LuaCompileError: Error, CustomStringConvertible, Sendable {
    public let chunk: String
    public let line: Int?
    public let message: String

    public var description: String {
        "lua syntax error in \(chunk)" + (line.map { " at line \($0)" } ?? "") + ": \(message)"
    }
}

/// What a script may use per run, per stream, per VM (docs/reliability.md, "Lua plugins").
public struct LuaLimits: Sendable, Equatable {
    /// VM instructions per resume of a script (each slice between waits).
    public var instructions: Int
    /// Bytes the VM of one event loop may hold, and the most a host call may hand it.
    public var memoryBytes: Int
    /// Milliseconds one slice may hold its event loop.
    public var maxRunMs: Int
    /// httpCall()s in flight per VM (plugin version and event loop).
    public var maxPendingCalls: Int
    /// httpCall()s in flight per stream.
    public var maxPendingCallsPerStream: Int
    /// Bytes of dynamic metadata (namespace + key + value) the plugin may set per stream.
    public var maxDynamicMetadataBytes: Int
    /// Declared capacity of `meshd.shared` dictionaries, by name; others get `LuaSharedDict.defaultCapacity`.
    public var sharedDicts: [String: Int]

    public init(instructions: Int = 10_000_000, memoryBytes: Int = 16 << 20, maxRunMs: Int = 100,
                maxPendingCalls: Int = 256, maxPendingCallsPerStream: Int = 16, maxDynamicMetadataBytes: Int = 64 << 10,
                sharedDicts: [String: Int] = [:]) {
        self.instructions = instructions
        self.memoryBytes = memoryBytes
        self.maxRunMs = maxRunMs
        self.maxPendingCalls = maxPendingCalls
        self.maxPendingCallsPerStream = maxPendingCallsPerStream
        self.maxDynamicMetadataBytes = maxDynamicMetadataBytes
        self.sharedDicts = sharedDicts
    }

    /// Every setting, for telling versions apart.
    var key: String {
        let counts = [instructions, memoryBytes, maxRunMs, maxPendingCalls, maxPendingCallsPerStream, maxDynamicMetadataBytes]
        let dicts = sharedDicts.keys.sorted().map { "\($0)=\(sharedDicts[$0]!)" }
        return (counts.map(String.init) + dicts).joined(separator: ",")
    }
}

/// Lua source that is known to compile. Immutable; each event loop builds its own VM from it.
public struct LuaScript: Sendable {
    public let source: String
    public let name: String

    /// Compiles once in a scratch state (text chunks only) so syntax errors surface at config time.
    public init(source: String, name: String) throws {
        self.source = source
        self.name = name
        guard let L = luaL_newstate() else { throw LuaCompileError(chunk: name, line: nil, message: "out of memory") }
        defer { lua_close(L) }
        let status = Self.load(L, source: source, name: name)
        guard status != LUA_OK else { return }
        let raw = meshd_lua_tostring(L, -1).map { String(cString: $0) } ?? "unknown error"
        throw Self.parseError(raw, chunk: name)
    }

    /// Source already known to compile (checked under another chunk name).
    package init(checked source: String, name: String) {
        self.source = source
        self.name = name
    }

    /// Pushes the compiled chunk (or an error message) on `L`'s stack.
    package static func load(_ L: OpaquePointer, source: String, name: String) -> Int32 {
        var source = source
        return source.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                meshd_luaL_loadbuffer(L, chars.baseAddress, chars.count, "=" + name)
            }
        }
    }

    /// Lua reports "name:LINE: message"; pull the line out.
    package static func parseError(_ raw: String, chunk: String) -> LuaCompileError {
        let prefix = chunk + ":"
        if raw.hasPrefix(prefix) {
            let rest = raw.dropFirst(prefix.count)
            if let colon = rest.firstIndex(of: ":"), let line = Int(rest[..<colon]) {
                let message = rest[rest.index(after: colon)...].drop { $0 == " " }
                return LuaCompileError(chunk: chunk, line: line, message: String(message))
            }
        }
        return LuaCompileError(chunk: chunk, line: nil, message: raw)
    }
}
