import CLua
import MeshAPI

/// Lua values as metadata values (Envoy's `google.protobuf.Value`, here `JSONValue`):
/// strings, numbers, booleans, nil, and tables of them (keys strings or numbers; a table
/// whose keys are exactly 1..n is a list). Reading back gives the same types, a JSON null
/// being nil.
package enum LuaMetadataValue {
    /// The value at `index`; a function, userdata or a table nested too deep (or a cycle) raises.
    package static func read(_ L: OpaquePointer, _ index: Int32, depth: Int = 0) throws -> JSONValue {
        switch lua_type(L, index) {
        case LUA_TNIL, LUA_TNONE: return .null
        case LUA_TBOOLEAN: return .bool(lua_toboolean(L, index) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(L, index) != 0 { return .number(Double(lua_tointegerx(L, index, nil))) }
            return .number(lua_tonumberx(L, index, nil))
        case LUA_TSTRING: return .string(LuaObjects.string(L, index) ?? "")
        case LUA_TLIGHTUSERDATA where lua_touserdata(L, index) == LuaJSON.nullSentinel: return .null
        case LUA_TTABLE:
            guard depth < LuaJSON.maxDepth else { throw LuaRaise("metadata value: nesting too deep (or a cycle)") }
            return try table(L, lua_absindex(L, index), depth: depth + 1)
        default:
            throw LuaRaise("metadata value: cannot store a \(LuaObjects.typeName(L, index))")
        }
    }

    private static func table(_ L: OpaquePointer, _ t: Int32, depth: Int) throws -> JSONValue {
        guard lua_checkstack(L, 4) != 0 else { throw LuaRaise("metadata value: stack overflow") }
        let n = lua_rawlen(L, t)
        var object: [String: JSONValue] = [:]
        var list = [JSONValue](repeating: .null, count: Int(n))
        var isList = n > 0
        var count = 0
        lua_pushnil(L)
        while lua_next(L, t) != 0 {
            count += 1
            let keyType = lua_type(L, -2)
            guard keyType == LUA_TSTRING || keyType == LUA_TNUMBER else {
                meshd_lua_pop(L, 2)
                throw LuaRaise("metadata value: table keys must be strings or numbers")
            }
            let value: JSONValue
            do { value = try read(L, -1, depth: depth) } catch {
                meshd_lua_pop(L, 2)
                throw error
            }
            if isList, lua_isinteger(L, -2) != 0, case let i = lua_tointegerx(L, -2, nil), i >= 1, i <= n {
                list[Int(i) - 1] = value
            } else {
                isList = false
            }
            // A copy of the key: converting a number key in place would break lua_next.
            lua_pushvalue(L, -2)
            object[LuaObjects.string(L, -1) ?? ""] = value
            meshd_lua_pop(L, 2)
        }
        return isList && count == n ? .array(list) : .object(object)
    }

    /// Pushes `value`; a JSON null is nil (a key holding null reads as absent, as in Envoy).
    package static func push(_ L: OpaquePointer, _ value: JSONValue) {
        LuaJSON.push(L, value, nullAsNil: true)
    }
}
