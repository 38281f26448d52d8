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
            var out: [UInt8] = []
            try encodeValue(L, 1, into: &out, depth: 0)
            out.withUnsafeBytes { LuaObjects.push(L, bytes: $0) }
            return 1
        }
    }

    package static func decode(_ L: OpaquePointer?) -> Int32 {
        LuaObjects.host(L) { L in
            guard lua_type(L, 1) == LUA_TSTRING else { throw LuaRaise("json.decode expects a string") }
            var len = 0
            let p = lua_tolstring(L, 1, &len)!
            var parser = LuaJSONParser(L: L, bytes: UnsafeRawBufferPointer(start: p, count: len))
            try parser.parseDocument()
            return 1
        }
    }

    private static func encodeValue(_ L: OpaquePointer, _ index: Int32, into out: inout [UInt8], depth: Int) throws {
        switch lua_type(L, index) {
        case LUA_TNIL:
            out.append(contentsOf: "null".utf8)
        case LUA_TBOOLEAN:
            out.append(contentsOf: (lua_toboolean(L, index) != 0 ? "true" : "false").utf8)
        case LUA_TNUMBER:
            if lua_isinteger(L, index) != 0 {
                out.append(contentsOf: String(lua_tointegerx(L, index, nil)).utf8)
            } else {
                let n = lua_tonumberx(L, index, nil)
                guard n.isFinite else { throw LuaRaise("json.encode: cannot encode \(n)") }
                if n == n.rounded(), abs(n) < 1e15 { out.append(contentsOf: String(Int64(n)).utf8) } else {
                    out.append(contentsOf: "\(n)".utf8)
                }
            }
        case LUA_TSTRING:
            var len = 0
            let p = lua_tolstring(L, index, &len)!
            appendString(UnsafeRawBufferPointer(start: p, count: len), into: &out)
        case LUA_TLIGHTUSERDATA where lua_touserdata(L, index) == nullSentinel:
            out.append(contentsOf: "null".utf8)
        case LUA_TTABLE:
            guard depth < maxDepth else { throw LuaRaise("json.encode: nesting too deep (or a cycle)") }
            try encodeTable(L, index, into: &out, depth: depth + 1)
        default:
            throw LuaRaise("json.encode: cannot encode a \(LuaObjects.typeName(L, index))")
        }
    }

    private static func encodeTable(_ L: OpaquePointer, _ index: Int32, into out: inout [UInt8], depth: Int) throws {
        guard lua_checkstack(L, 4) != 0 else { throw LuaRaise("json.encode: stack overflow") }
        let t = lua_absindex(L, index)
        let n = lua_rawlen(L, t)
        var count = 0
        var isArray = n > 0
        lua_pushnil(L)
        while lua_next(L, t) != 0 {
            count += 1
            if isArray, lua_isinteger(L, -2) == 0 || lua_tointegerx(L, -2, nil) < 1 || lua_tointegerx(L, -2, nil) > n {
                isArray = false
            }
            meshd_lua_pop(L, 1)
        }
        if isArray && count == n {
            out.append(UInt8(ascii: "["))
            for i in 1...n {
                if i > 1 { out.append(UInt8(ascii: ",")) }
                lua_rawgeti(L, t, lua_Integer(i))
                try encodeValue(L, -1, into: &out, depth: depth)
                meshd_lua_pop(L, 1)
            }
            out.append(UInt8(ascii: "]"))
            return
        }
        out.append(UInt8(ascii: "{"))
        var first = true
        lua_pushnil(L)
        while lua_next(L, t) != 0 {
            let keyType = lua_type(L, -2)
            guard keyType == LUA_TSTRING || keyType == LUA_TNUMBER else {
                meshd_lua_pop(L, 2)
                throw LuaRaise("json.encode: object keys must be strings or numbers")
            }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            // A copy of the key: converting a number key in place would break lua_next.
            lua_pushvalue(L, -2)
            var len = 0
            let p = lua_tolstring(L, -1, &len)!
            appendString(UnsafeRawBufferPointer(start: p, count: len), into: &out)
            meshd_lua_pop(L, 1)
            out.append(UInt8(ascii: ":"))
            try encodeValue(L, -1, into: &out, depth: depth)
            meshd_lua_pop(L, 1)
        }
        out.append(UInt8(ascii: "}"))
    }

    private static func appendString(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 10: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 13: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 9: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 8: out.append(contentsOf: [92, UInt8(ascii: "b")])
            case 12: out.append(contentsOf: [92, UInt8(ascii: "f")])
            case 0..<32, 127:
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Pushes config JSON (pluginConfig, route metadata) as Lua values.
    package static func push(_ L: OpaquePointer, _ value: JSONValue, depth: Int = 0) {
        guard depth < maxDepth, lua_checkstack(L, 3) != 0 else { lua_pushnil(L); return }
        switch value {
        case .null: lua_pushlightuserdata(L, nullSentinel)
        case .bool(let b): lua_pushboolean(L, b ? 1 : 0)
        case .number(let n):
            if n == n.rounded(), abs(n) < 9.0e15 { lua_pushinteger(L, lua_Integer(n)) } else { lua_pushnumber(L, n) }
        case .string(let s): LuaObjects.push(L, s)
        case .array(let a):
            lua_createtable(L, Int32(a.count), 0)
            for (i, v) in a.enumerated() {
                push(L, v, depth: depth + 1)
                lua_rawseti(L, -2, lua_Integer(i + 1))
            }
        case .object(let o):
            lua_createtable(L, 0, Int32(o.count))
            for (k, v) in o {
                LuaObjects.push(L, k)
                push(L, v, depth: depth + 1)
                lua_rawset(L, -3)
            }
        }
    }
}
