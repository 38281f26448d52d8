import CLua
@testable import FilterHost
import MeshAPI
import NIOEmbedded
import XCTest
@testable import LuaRuntime
@testable import Filters

/// The guarded string.find / match / gmatch / gsub give what Lua 5.4's own give, results and
/// error messages alike: the same chunk runs in a stock state and in a plugin.
final class LuaPatternTests: XCTestCase {
    static let corpus = #"""
    local cases = {
      {"hello world", "o"}, {"hello world", "o", 6}, {"hello world", "o", -3}, {"hello world", "o", 0},
      {"hello world", "o", 100}, {"hello", "", 6}, {"hello", "", 7}, {"hello", "l+"}, {"hello", "^h"},
      {"hello", "^e"}, {"hello", "o$"}, {"hel$lo", "l$l"}, {"a.b", ".", 1, true}, {"a.b", "%."},
      {"key = value", "(%w+)%s*=%s*(%w+)"}, {"key = value", "()(%w+)()"}, {"  trim me  ", "^%s*(.-)%s*$"},
      {"f(a(b)c)d", "%b()"}, {"THE (quick) fox", "%f[%a]%a+"}, {"THE (quick) fox", "%f[%l]%a+"},
      {"hello hello", "(h%a+) %1"}, {"abc]def", "[]]"}, {"a-b", "[a-]"}, {"x^y", "[%^x]+"}, {"abc", "[^a]+"},
      {"2024-01-05", "(%d+)-(%d+)-(%d+)"}, {"aaa", "a-"}, {"aaa", "a-$"}, {"aaab", "a*b"}, {"b", "a?b"},
      {"ab", "a?b"}, {"abc\0def", "%z"}, {"abc\0def", "c%zd"}, {"abc\0def", "\0d", 1, true}, {"xyz", "[x-z]+"},
      {"A1_b2", "[%w_]+"}, {"tab\there", "%c"}, {"punct!?", "%p+"}, {"MiXeD", "%u%l"}, {"0x1F", "%x+"},
      {"", ".*"}, {"", "x*"}, {"abc", "()"},
      {"abc", "%"}, {"abc", "[a"}, {"abc", "(a"}, {"abc", "a)"}, {"abc", "%1"}, {"abc", "(a)%2"}, {"abc", "%b"},
      {"abc", "%fa"}, {"abc", "[%"}, {"abc", string.rep("(a)", 33)}, {"abc", string.rep("a?", 300)},
      {"abc", nil}, {nil, "a"},
    }
    local out = {}
    local function show(...)
      local t = table.pack(...)
      for i = 1, t.n do t[i] = type(t[i]) == "string" and ("%q"):format(t[i]) or tostring(t[i]) end
      out[#out + 1] = table.concat(t, " ")
    end
    for i, c in ipairs(cases) do
      local s, p, a, b = c[1], c[2], c[3], c[4]
      show(i, "find", pcall(string.find, s, p, a, b))
      show(i, "match", pcall(string.match, s, p, a))
      local ok, it = pcall(string.gmatch, s, p, a)
      if ok then
        local all = {}
        show(i, "gmatch", pcall(function() for x, y in it do all[#all + 1] = tostring(x) .. "/" .. tostring(y) end end))
        show(i, "gmatch", table.concat(all, ","))
      else
        show(i, "gmatch", it)
      end
      show(i, "gsub", pcall(string.gsub, s, p, "<%0>"))
      show(i, "gsub1", pcall(string.gsub, s, p, "[%1]", 2))
      show(i, "gsubf", pcall(string.gsub, s, p, function(x) return x and x:upper() end))
      show(i, "gsubt", pcall(string.gsub, s, p, {a = "A", l = false, h = 7}))
    end
    show(pcall(string.gsub, "abc", "%w", "%2"))
    show(pcall(string.gsub, "abc", "%w", "%x"))
    show(pcall(string.gsub, "abc", "%w", "%"))
    show(pcall(string.gsub, "abc", "%w", "%%"))
    show(pcall(string.gsub, "abc", "(%w)()", "%2"))
    show(pcall(string.gsub, "abc", "%w", function() return {} end))
    show(pcall(string.gsub, "abc", "%w", true))
    show(pcall(string.gsub, "hello world", "(o)", "%1%1", 1))
    show(pcall(string.gsub, "abc", "", "-"))
    show(pcall(string.gsub, "abc", "b*", "-"))
    show(pcall(string.gsub, 12345, 3, 9))
    show(pcall(string.find, 12345, 3))
    show(pcall(string.rep, "ab", 3, ","), pcall(string.rep, "x", 0), pcall(string.rep, "", 5, ""), pcall(string.rep))
    local gm = {}
    for k, v in string.gmatch("a=1, b=2, c=3", "(%w+)=(%w+)") do gm[#gm + 1] = k .. v end
    for w in string.gmatch("one two three", "%a+", 5) do gm[#gm + 1] = w end
    for w in string.gmatch("abc", "") do gm[#gm + 1] = "<" .. w .. ">" end
    for w in string.gmatch("^a^a", "^a") do gm[#gm + 1] = w end
    show(table.concat(gm, ","))
    local t = {5, 1, 4}
    table.insert(t, 2); table.insert(t, 1, 9)
    show(table.concat(t, ","), table.remove(t), table.remove(t, 1), table.concat(t, ","), table.remove({}), table.remove({}, 0))
    show(pcall(table.insert, t, 9, 1), pcall(table.insert, t, 1, 2, 3), pcall(table.remove, t, 9), pcall(table.insert, 1, 2))
    show(table.concat(table.move({1, 2, 3, 4, 5}, 2, 4, 1), ","), table.concat(table.move({1, 2, 3}, 1, 3, 3), ","),
         table.concat(table.move({1, 2}, 1, 2, 2, {}), ","), pcall(table.move, {}, 1, math.maxinteger, 2))
    return table.concat(out, "\n")
    """#

    /// The corpus in a stock Lua state.
    private func stock() throws -> String {
        let L = try XCTUnwrap(luaL_newstate())
        defer { lua_close(L) }
        luaL_openlibs(L)
        // One line first, as in the plugin, so error positions read the same.
        let chunk = "\n" + Self.corpus
        XCTAssertEqual(meshd_luaL_loadbuffer(L, chunk, chunk.utf8.count, "=test"), LUA_OK)
        XCTAssertEqual(meshd_lua_pcall(L, 0, 1, 0), LUA_OK, LuaVM.message(L))
        return LuaVM.message(L)
    }

    func testGuardedFunctionsMatchStockLua() throws {
        let code = "local function corpus()\n\(Self.corpus)\nend\n" + """
        function envoy_on_request(h) h:streamInfo():dynamicMetadata():set("t", "out", corpus()) end
        """
        let factory = try LuaTest.factory(code, limits: ["maxDynamicMetadataBytes": .number(Double(1 << 20))])
        let s = try ChainHarness(eventLoop: EmbeddedEventLoop(), factories: [factory])
        s.sendRequest()
        let guarded = try XCTUnwrap(s.dynamic("t", "out"), LuaTest.vm(factory, s.eventLoop).lastError ?? "")
        let expected = try stock()
        let (g, e) = (guarded.split(separator: "\n"), expected.split(separator: "\n"))
        XCTAssertEqual(g.count, e.count)
        for (a, b) in zip(g, e) where a != b { XCTFail("guarded: \(a)\n   stock: \(b)") }
        XCTAssertGreaterThan(e.count, 400)
    }
}
