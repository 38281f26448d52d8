import CLua
import Logging
import MeshAPI

/// handle:logInfo(msg) and friends, and print(): to swift-log, tagged with the plugin name.
package enum LuaLog {
    /// Envoy offers the log calls on every object it gives a script, not only the handle.
    package static var methods: [(String, LuaHostFn)] {
        [
            ("logTrace", { L in LuaLog.method(L, .trace, "logTrace") }),
            ("logDebug", { L in LuaLog.method(L, .debug, "logDebug") }),
            ("logInfo", { L in LuaLog.method(L, .info, "logInfo") }),
            ("logWarn", { L in LuaLog.method(L, .warning, "logWarn") }),
            ("logErr", { L in LuaLog.method(L, .error, "logErr") }),
            ("logCritical", { L in LuaLog.method(L, .critical, "logCritical") }),
        ]
    }

    /// `obj:logX(message)`: the message must be a string (a number is written as text), as
    /// Envoy's `luaL_checkstring`; anything else raises Lua's argument error.
    package static func method(_ L: OpaquePointer?, _ level: Logger.Level, _ name: String) -> Int32 {
        LuaObjects.host(L) { L in
            let vm = try LuaObjects.live(L)
            guard let message = LuaObjects.string(L, 2) else {
                throw LuaRaise("bad argument #1 to '\(name)' (string expected, got \(LuaObjects.typeName(L, 2)))")
            }
            if vm.logger.logLevel <= level { vm.logger.log(level: level, "\(message)") }
            return 0
        }
    }

    package static func print(_ L: OpaquePointer?) -> Int32 {
        LuaObjects.host(L) { L in
            let vm = LuaObjects.vm(L)
            if vm.logger.logLevel <= .info { vm.logger.info("\(text(L, from: 1))") }
            return 0
        }
    }

    /// The arguments from `index` on, joined by tabs like print (no __tostring calls).
    package static func text(_ L: OpaquePointer, from index: Int32) -> String {
        let top = lua_gettop(L)
        guard index <= top else { return "" }
        var parts: [String] = []
        for i in index...top {
            switch lua_type(L, i) {
            case LUA_TSTRING, LUA_TNUMBER: parts.append(LuaObjects.string(L, i) ?? "")
            case LUA_TBOOLEAN: parts.append(lua_toboolean(L, i) != 0 ? "true" : "false")
            case LUA_TNIL: parts.append("nil")
            default: parts.append(LuaObjects.typeName(L, i))
            }
        }
        return parts.joined(separator: "\t")
    }
}
