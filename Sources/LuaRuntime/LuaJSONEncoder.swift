import CLua
import MeshAPI

/// meshd.json.encode's writer. The text becomes a string in the plugin's VM, so it may not
/// grow past what the VM's memory cap leaves (a table holding one large string many times
/// would otherwise make the host allocate gigabytes), and the walk looks at the slice's
/// clock as it goes (shared subtables make the work exponential in the depth).
struct LuaJSONEncoder {
    private static let hex = Array("0123456789abcdef".utf8)
    /// Values encoded between two looks at the clock.
    private static let valuesPerCheck = 4096

    let vm: LuaVM
    var out: [UInt8] = []
    /// The most bytes the result may have.
    let limit: Int
    private var values = 0

    init(vm: LuaVM) {
        self.vm = vm
        limit = max(0, vm.memoryLimit - vm.memoryInUse)
    }

    private var tooLarge: LuaRaise {
        LuaRaise("json.encode: result too large (over the \(limit) bytes left under the plugin's memory limit)")
    }

    private func checkSize() throws {
        guard out.count <= limit else { throw tooLarge }
    }

    mutating func value(_ L: OpaquePointer, _ index: Int32, depth: Int) throws {
        values += 1
        if values % Self.valuesPerCheck == 0, vm.sliceExpired {
            throw LuaRaise("time budget exceeded (\(vm.limits.maxRunMs) ms)")
        }
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
            try string(UnsafeRawBufferPointer(start: p, count: len))
        case LUA_TLIGHTUSERDATA where lua_touserdata(L, index) == LuaJSON.nullSentinel:
            out.append(contentsOf: "null".utf8)
        case LUA_TTABLE:
            guard depth < LuaJSON.maxDepth else { throw LuaRaise("json.encode: nesting too deep (or a cycle)") }
            try table(L, index, depth: depth + 1)
        default:
            throw LuaRaise("json.encode: cannot encode a \(LuaObjects.typeName(L, index))")
        }
        try checkSize()
    }

    private mutating func table(_ L: OpaquePointer, _ index: Int32, depth: Int) throws {
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
                try value(L, -1, depth: depth)
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
            try string(UnsafeRawBufferPointer(start: p, count: len))
            meshd_lua_pop(L, 1)
            out.append(UInt8(ascii: ":"))
            try value(L, -1, depth: depth)
            meshd_lua_pop(L, 1)
        }
        out.append(UInt8(ascii: "}"))
    }

    private mutating func string(_ bytes: UnsafeRawBufferPointer) throws {
        // Refuse before copying what cannot fit even unescaped.
        guard out.count + bytes.count + 2 <= limit else { throw tooLarge }
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
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, Self.hex[Int(b >> 4)], Self.hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
        try checkSize()
    }
}
