@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters
@testable import PluginTesting

/// Sandbox, limits, scope rules and config errors.
final class LuaSafetyTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func run(_ code: String, instructions: Int? = nil, memoryBytes: Int? = nil,
                     body: [String] = []) throws -> (ChainHarness, LuaVM) {
        let factory = try LuaTest.factory(code, instructions: instructions, memoryBytes: memoryBytes)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest(method: body.isEmpty ? "GET" : "POST", body: body)
        return (s, LuaTest.vm(factory, loop))
    }

    func testSandboxHidesDangerousLibraries() throws {
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local names = {}
          local all = table.pack(io, os.execute, os.exit, os.getenv, debug, dofile, loadfile, package)
          for i = 1, all.n do names[i] = tostring(all[i]) end
          h:headers():add("x-absent", table.concat(names, ","))
          local f, err = load(string.dump(function() end))
          h:headers():add("x-binary", tostring(f) .. ":" .. tostring(err ~= nil))
          h:headers():add("x-text", tostring(load("return 1 + 1")()))
          h:headers():add("x-loadstring", tostring(loadstring("return 7")()))
          h:headers():add("x-os", type(os.time()) .. type(os.clock()) .. type(os.date("%Y")))
          h:headers():add("x-unpack", tostring(select("#", unpack({1, 2, 3}))))
          -- require loads only the plugin's own modules: never a library or a file.
          local ok, err = pcall(require, "io")
          h:headers():add("x-require", tostring(ok) .. ":" .. err)
        end
        """)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-absent"), "nil,nil,nil,nil,nil,nil,nil,nil")
        XCTAssertEqual(s.upstream("x-require"), "false:module 'io' not found: meshd loads only the plugin's own modules")
        XCTAssertEqual(s.upstream("x-binary"), "nil:true")
        XCTAssertEqual(s.upstream("x-text"), "2")
        XCTAssertEqual(s.upstream("x-loadstring"), "7")
        XCTAssertEqual(s.upstream("x-os"), "numbernumberstring")
        XCTAssertEqual(s.upstream("x-unpack"), "3")
    }

    func testBitModuleMatchesLuaJIT() throws {
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local r = { bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 1), bit.bnot(0), bit.lshift(1, 31),
                      bit.rshift(-1, 28), bit.arshift(-16, 2), bit.tobit(0xffffffff), bit.tohex(255), bit.tohex(-1, -4) }
          for i, v in ipairs(r) do r[i] = tostring(v) end
          h:headers():add("x-bit", table.concat(r, ","))
        end
        """)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-bit"), "15,7,4,-1,-2147483648,15,-4,-1,000000ff,FFFF")
    }

    func testInfiniteLoopIsCutByBudget() throws {
        let (s, vm) = try run("function envoy_on_request(h) while true do end end", instructions: 200_000)
        XCTAssertEqual(vm.lastError, "instruction budget exceeded")
        XCTAssertNotNil(s.upstreamHead, "FAIL_OPEN lets the request continue")
        // A pcall cannot swallow the budget.
        let (_, vm2) = try run("""
        function envoy_on_request(h)
          while true do pcall(function() while true do end end) end
        end
        """, instructions: 200_000)
        XCTAssertEqual(vm2.lastError, "instruction budget exceeded")
    }

    func testMemoryBombIsCapped() throws {
        let cap = 4 << 20
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local s = "x"
          while true do s = s .. string.rep(s, 2) end
        end
        """, memoryBytes: cap)
        XCTAssertEqual(vm.lastError.map { $0.contains("not enough memory") }, true, vm.lastError ?? "")
        XCTAssertLessThanOrEqual(vm.memoryInUse, cap)
        XCTAssertNotNil(s.upstreamHead)
        // The VM still works afterwards.
        let s2 = try ChainHarness(eventLoop: loop, factories: [try LuaTest.factory("function envoy_on_request(h) end")])
        s2.sendRequest()
        XCTAssertNotNil(s2.upstreamHead)
    }

    func testSyntaxErrorReportsLine() throws {
        XCTAssertThrowsError(try LuaTest.factory("local x = 1\nlocal y = 2\nfunction (\n")) { error in
            guard let e = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.path, "inlineCode")
            XCTAssertTrue(e.reason.contains("at line 3"), e.reason)
        }
        XCTAssertThrowsError(try LuaFilterFactory.build(.object(["failStrategy": .string("FAIL_OPEN")])))
        XCTAssertThrowsError(try LuaTest.factory("x = 1", failStrategy: "SOMETIMES"))
    }

    func testUnexpectedYieldAndStaleObjects() throws {
        let (_, vm) = try run("function envoy_on_request(h) coroutine.yield() end")
        XCTAssertEqual(vm.lastError, "script performed an unexpected yield")
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          if saved then saved:headers():add("x", "1") end
          saved = h
        end
        """)
        let vm2 = LuaTest.vm(factory, loop)
        for _ in 0..<2 { try ChainHarness(eventLoop: loop, factories: [factory]).sendRequest() }
        XCTAssertEqual(vm2.lastError, "object used outside of proper scope")
    }

    func testRespondOnResponsePathAndModifyWhileIterating() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local ok, err = pcall(function()
            for k, v in h:headers():pairs() do h:headers():add("x-new", "1") end
          end)
          h:streamInfo():dynamicMetadata():set("t", "iter", err)
        end
        function envoy_on_response(h) h:respond({[":status"] = "200"}, "") end
        """)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest(headers: [("a", "1")])
        XCTAssertEqual(s.dynamic("t", "iter"), "header map cannot be modified while iterating")
        s.sendResponse()
        XCTAssertEqual(LuaTest.vm(factory, loop).lastError, "respond not currently supported in the response path")
        XCTAssertEqual(s.clientHead?.status, 200)
    }

    func testPairsListsPseudoHeadersAndHeaders() throws {
        let (s, _) = try run("""
        function envoy_on_request(h)
          local seen = {}
          for k, v in h:headers():pairs() do seen[#seen + 1] = k .. "=" .. v end
          h:headers():add("x-all", table.concat(seen, ";"))
        end
        """)
        XCTAssertEqual(s.upstream("x-all"), ":authority=example.com;:path=/;:method=GET;:scheme=http")
    }

    func testHttpCallArgumentsAreCheckedAsEnvoyDoes() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local hd = h:headers()
          local function try(...)
            local ok, err = pcall(h.httpCall, h, ...)
            return tostring(err)
          end
          local good = {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}
          hd:add("x-unknown", try("nope", good, nil, 10))
          hd:add("x-option", try("c", good, nil, {timeout_ms = 10, colour = "blue"}))
          hd:add("x-negative", try("c", good, nil, -1))
          hd:add("x-negative-opt", try("c", good, nil, {timeout_ms = -5}))
          hd:add("x-flag", try("c", good, nil, {asynchronous = "yes"}))
          hd:add("x-missing", try("c", {[":method"] = "GET", [":path"] = "/"}, nil, 10))
          hd:add("x-value", try("c", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x", a = {1, {}}}, nil, 10))
          hd:add("x-body", try("c", good, {}, 10))
          hd:add("x-list", try("c", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x", a = {"1", "2"}}, "b", 10))
        end
        """)
        let bootstrap = try BootstrapLoader.parse("clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 1}]}]")
        let s = try ChainHarness(eventLoop: loop, factories: [factory], bootstrap: bootstrap)
        s.sendRequest()
        XCTAssertNil(LuaTest.vm(factory, loop).lastError)
        XCTAssertTrue(s.upstream("x-unknown")!.hasSuffix("http call cluster invalid. Must be configured"))
        XCTAssertTrue(s.upstream("x-option")!.hasSuffix("\"colour\" is not valid key for httpCall() options"))
        XCTAssertTrue(s.upstream("x-negative")!.hasSuffix("http call timeout must be >= 0"))
        XCTAssertTrue(s.upstream("x-negative-opt")!.hasSuffix("http call timeout must be >= 0"))
        XCTAssertTrue(s.upstream("x-flag")!.hasSuffix("httpCall() option asynchronous must be a boolean"))
        XCTAssertTrue(s.upstream("x-missing")!.hasSuffix("http call headers must include ':path', ':method', and ':authority'"))
        XCTAssertTrue(s.upstream("x-value")!.hasSuffix("http call header value must be a string or a table of strings"))
        XCTAssertTrue(s.upstream("x-body")!.hasSuffix("http call body must be a string or nil"))
        // Valid arguments: this test stream has no upstream pools to send with.
        XCTAssertTrue(s.upstream("x-list")!.hasSuffix("httpCall is not available on this stream"))
    }
}
