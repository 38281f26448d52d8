import CLua
import CLuaGuard
import MeshAPI

/// The libraries a plugin sees: base (without file loading or binary chunks), string,
/// table, math, utf8, coroutine, a reduced `os`; LuaJIT's `unpack`, `loadstring` and `bit`;
/// and meshd's own `meshd.json` and `meshd.shared`; `require` of the plugin's own modules
/// only (LuaModules). No io, debug or package.
package enum LuaSandbox {
    static func open(_ vm: LuaVM) {
        let L = vm.L
        let libs: [(String, lua_CFunction)] = [
            ("_G", luaopen_base), ("string", luaopen_string), ("table", luaopen_table),
            ("math", luaopen_math), ("utf8", luaopen_utf8), ("coroutine", luaopen_coroutine),
            ("os", luaopen_os),
        ]
        for (name, fn) in libs {
            luaL_requiref(L, name, fn, 1)
            meshd_lua_pop(L, 1)
        }
        // Patterns, string.rep, table.insert/remove/move, coroutines, setmetatable (no __gc).
        meshd_guard_open(L)
        // print goes to the plugin's log rather than the proxy's stdout.
        registerHost(L, global: "print") { L in LuaLog.print(L) }

        meshd_lua_newtable(L)
        meshd_lua_newtable(L)
        setHost(L, "encode") { L in LuaJSON.encode(L) }
        setHost(L, "decode") { L in LuaJSON.decode(L) }
        lua_pushlightuserdata(L, LuaJSON.nullSentinel)
        lua_setfield(L, -2, "null")
        lua_setfield(L, -2, "json")
        setHost(L, "shared") { L in LuaSharedDictAPI.open(L) }
        lua_setglobal(L, "meshd")

        guard meshd_luaL_dostring(L, prelude) == LUA_OK else {
            // The prelude is ours; failing here is a bug, reported rather than fatal.
            vm.logger.error("lua sandbox prelude failed: \(LuaVM.message(L))")
            meshd_lua_pop(L, 1)
            return
        }
        LuaModules.install(vm)
    }

    /// Sets field `name` of the table on top of the stack to a host function.
    package static func setHost(_ L: OpaquePointer, _ name: String, _ fn: LuaHostFn) {
        meshd_pushhostfn(L, fn, 0)
        lua_setfield(L, -2, name)
    }

    package static func registerHost(_ L: OpaquePointer, global name: String, _ fn: LuaHostFn) {
        meshd_pushhostfn(L, fn, 0)
        lua_setglobal(L, name)
    }

    /// The longest chunk `load` compiles from one string (compiling cannot be interrupted).
    package static let maxChunkBytes = 1 << 20

    /// Runs once per VM, before the plugin. Written in Lua because it is plain table work.
    static let prelude = """
    local load, select, type, error, tostring = load, select, type, error, tostring
    local tointeger, floor, fmt = math.tointeger, math.floor, string.format
    dofile, loadfile = nil, nil
    -- Text chunks only: crafted bytecode can break out of any Lua sandbox. Compiling runs
    -- without hooks, so a chunk given as one string is bounded in size.
    local maxChunk = \(maxChunkBytes)
    local function textLoad(chunk, name, mode, ...)
      if type(chunk) == "string" and #chunk > maxChunk then
        return nil, "chunk too large (" .. #chunk .. " bytes; the limit is " .. maxChunk .. ")"
      end
      if select('#', ...) > 0 then return load(chunk, name, "t", ...) end
      return load(chunk, name, "t")
    end
    _G.load = textLoad
    function loadstring(s, name) return textLoad(s, name) end
    unpack = table.unpack
    os = { time = os.time, clock = os.clock, date = os.date }
    local gc = collectgarbage
    local gcAllowed = { collect = true, count = true, step = true, isrunning = true }
    function collectgarbage(opt, ...)
      opt = opt or "collect"
      if not gcAllowed[opt] then error("collectgarbage('" .. tostring(opt) .. "') is not allowed", 2) end
      return gc(opt, ...)
    end
    -- LuaJIT's bit module: 32-bit signed results.
    local function tobit(x)
      if type(x) ~= "number" then error("bad argument to bit operation (number expected)", 3) end
      x = tointeger(x) or tointeger(floor(x)) or 0
      x = x & 0xffffffff
      if x >= 0x80000000 then x = x - 0x100000000 end
      return x
    end
    local function fold(op)
      return function(x, ...)
        local r = tobit(x)
        for i = 1, select('#', ...) do r = op(r, tobit((select(i, ...)))) end
        return tobit(r)
      end
    end
    bit = {
      tobit = function(x) return tobit(x) end,
      band = fold(function(a, b) return a & b end),
      bor = fold(function(a, b) return a | b end),
      bxor = fold(function(a, b) return a ~ b end),
      bnot = function(x) return tobit(~tobit(x)) end,
      lshift = function(x, n) return tobit(tobit(x) << (tobit(n) & 31)) end,
      rshift = function(x, n) return tobit((tobit(x) & 0xffffffff) >> (tobit(n) & 31)) end,
      arshift = function(x, n) return tobit(tobit(x) // (1 << (tobit(n) & 31))) end,
      rol = function(x, n)
        x, n = tobit(x) & 0xffffffff, tobit(n) & 31
        return tobit((x << n) | (x >> (32 - n)))
      end,
      ror = function(x, n)
        x, n = tobit(x) & 0xffffffff, tobit(n) & 31
        return tobit((x >> n) | (x << (32 - n)))
      end,
      bswap = function(x)
        x = tobit(x) & 0xffffffff
        return tobit(((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >> 8) & 0xff00) | (x >> 24))
      end,
      tohex = function(x, n)
        n = n and tobit(n) or 8
        local upper = n < 0
        if upper then n = -n end
        if n > 8 then n = 8 end
        local v = tobit(x) & ((1 << (4 * n)) - 1)
        return fmt(upper and ("%0" .. n .. "X") or ("%0" .. n .. "x"), v)
      end,
    }
    EnvoyTimestampResolution = { MILLISECOND = "MILLISECOND", MICROSECOND = "MICROSECOND" }
    """
}
