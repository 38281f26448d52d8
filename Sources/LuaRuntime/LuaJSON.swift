import CLua
import MeshAPI

/// meshd.json.encode / decode. Tables whose keys are exactly 1..n encode as arrays, other
/// tables as objects (an empty table is `{}`); integral numbers print as integers;
/// JSON null decodes to `meshd.json.null`.
package enum LuaJSON {
    /// A unique address for the null sentinel (a light userdata).
    package nonisolated(unsafe) static let nullSentinel = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
    package static let maxDepth = 100

    package static func encode(_ L: OpaquePointer?) -> Int32 {
        LuaObjects.host(L) { L in
            lua_settop(L, 1)
            var encoder = LuaJSONEncoder(vm: LuaObjects.vm(L))
            try encoder.value(L, 1, depth: 0)
            encoder.out.withUnsafeBytes { LuaObjects.push(L, bytes: $0) }
            return 1
        }
    }

    package static func decode(_ L: OpaquePointer?) -> Int32 {
        LuaObjects.host(L) { L in
            guard lua_type(L, 1) == LUA_TSTRING else { throw LuaRaise("json.decode expects a string") }
            var len = 0
            let p = lua_tolstring(L, 1, &len)!
            var parser = LuaJSONParser(L: L, bytes: UnsafeRawBufferPointer(start: p, count: len), vm: LuaObjects.vm(L))
            try parser.parseDocument()
            if LuaObjects.vm(L).memoryInUse > LuaObjects.vm(L).memoryLimit { throw LuaRaise("json.decode: not enough memory") }
            return 1
        }
    }

    /// Pushes config JSON (pluginConfig, route metadata) as Lua values. A JSON null is
    /// `meshd.json.null`, or nil with `nullAsNil` (metadata: a key holding null reads as absent).
    package static func push(_ L: OpaquePointer, _ value: JSONValue, nullAsNil: Bool = false, depth: Int = 0) {
        guard depth < maxDepth, lua_checkstack(L, 3) != 0 else { lua_pushnil(L); return }
        switch value {
        case .null: if nullAsNil { lua_pushnil(L) } else { lua_pushlightuserdata(L, nullSentinel) }
        case .bool(let b): lua_pushboolean(L, b ? 1 : 0)
        case .number(let n):
            if n == n.rounded(), abs(n) < 9.0e15 { lua_pushinteger(L, lua_Integer(n)) } else { lua_pushnumber(L, n) }
        case .string(let s): LuaObjects.push(L, s)
        case .array(let a):
            lua_createtable(L, Int32(a.count), 0)
            for (i, v) in a.enumerated() {
                push(L, v, nullAsNil: nullAsNil, depth: depth + 1)
                lua_rawseti(L, -2, lua_Integer(i + 1))
            }
        case .object(let o):
            lua_createtable(L, 0, Int32(o.count))
            for (k, v) in o {
                LuaObjects.push(L, k)
                push(L, v, nullAsNil: nullAsNil, depth: depth + 1)
                lua_rawset(L, -3)
            }
        }
    }
}
