import CLua
import MeshAPI

/// `require(name)` over the plugin's own modules (its config's `modules: {name: code}`),
/// compiled at config time and loaded here as text chunks: nothing is ever read from disk,
/// and a name the plugin did not declare is an error. Each module runs once per VM, on its
/// first `require`; its result (or `true`) is cached, like Lua's `package.loaded`.
package enum LuaModules {
    static func install(_ vm: LuaVM) {
        let L = vm.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        guard LuaScript.load(L, source: requireCode, name: "meshd.require") == LUA_OK else {
            vm.logger.error("lua sandbox require failed to load: \(LuaVM.message(L))")
            return
        }
        lua_createtable(L, 0, Int32(vm.plugin.modules.count))
        for name in vm.plugin.modules.keys.sorted() {
            // Compiled once already at config time; this cannot fail on syntax.
            guard LuaScript.load(L, source: vm.plugin.modules[name]!.source, name: name) == LUA_OK else {
                vm.logger.error("lua module \(name) failed to load: \(LuaVM.message(L))")
                meshd_lua_pop(L, 1)
                continue
            }
            lua_setfield(L, -2, name)
        }
        guard meshd_lua_pcall(L, 1, 1, 0) == LUA_OK else {
            vm.logger.error("lua sandbox require failed: \(LuaVM.message(L))")
            return
        }
        lua_setglobal(L, "require")
    }

    /// Written in Lua because it is plain table work; `...` is the table of module chunks.
    static let requireCode = """
    local sources = ...
    local loaded, loading = {}, {}
    local type, error = type, error
    return function(name)
      if type(name) ~= "string" then
        error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
      end
      local v = loaded[name]
      if v ~= nil then return v end
      local chunk = sources[name]
      if chunk == nil then
        error("module '" .. name .. "' not found: meshd loads only the plugin's own modules", 2)
      end
      if loading[name] then error("loop or previous error loading module '" .. name .. "'", 2) end
      loading[name] = true
      v = chunk(name)
      if v == nil then v = true end
      loaded[name] = v
      loading[name] = nil
      return v
    end
    """
}
