import CLua
import Logging
import MeshAPI

/// handle:logInfo(msg) and friends, and print(): to swift-log, tagged with the plugin name.
package enum LuaLog {
    package static func method(_ L: OpaquePointer?, _ level: Logger.Level) -> Int32 {
        LuaObjects.host(L) { L in
            let s = try LuaObjects.run(L, .handle)
            if s.vm.logger.logLevel <= level {
                s.vm.logger.log(level: level, "\(text(L, from: 2))")
            }
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
