@testable import FilterHost
@testable import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters
@testable import PluginTesting

final class LuaFilterTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func stream(_ code: String, failStrategy: String = "FAIL_OPEN") throws -> (ChainHarness, LuaFilterFactory) {
        let factory = try LuaTest.factory(code, failStrategy: failStrategy)
        return (try ChainHarness(eventLoop: loop, factories: [factory]), factory)
    }

    func testHeaderMapMethodsOnRepeatedHeader() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-added", "1")
          hd:replace("x-rep", "new")
          hd:remove("x-gone")
          hd:add("x-seen", hd:get("x-multi") .. "|" .. hd:getAtIndex("x-multi", 1) .. "|" ..
            hd:getNumValues("x-multi") .. "|" .. tostring(hd:getAtIndex("x-multi", 2)) .. "|" ..
            tostring(hd:get("absent")) .. "|" .. hd:get(":path") .. "|" .. hd:get(":method"))
          hd:replace(":path", "/rewritten")
        end
        function envoy_on_response(h)
          h:headers():add("x-resp", h:headers():get(":status"))
        end
        """)
        s.sendRequest(path: "/p", headers: [("x-multi", "a"), ("X-Multi", "b"), ("x-rep", "old"), ("x-gone", "1")])
        XCTAssertEqual(s.upstream("x-added"), "1")
        XCTAssertEqual(s.upstreamHead?.headers["x-rep"], ["new"])
        XCTAssertNil(s.upstream("x-gone"))
        XCTAssertEqual(s.upstream("x-seen"), "a,b|b|2|nil|nil|/p|GET")
        XCTAssertEqual(s.upstreamHead?.path, "/rewritten")
        s.sendResponse(status: 201)
        XCTAssertEqual(s.client("x-resp"), "201")
    }

    func testBodyBufferedThenHeadersEditedAndLengthFixed() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h)
          local hd = h:headers()
          local b = h:body()
          hd:add("x-len", b:length())
          hd:add("x-bytes", b:getBytes(3, 4))
          hd:add("x-type", math.type(b:length()))
          b:setBytes("changed!")
        end
        """)
        s.sendRequest(method: "POST", headers: [("content-length", "10")], body: ["hello", "world"])
        XCTAssertEqual(s.upstream("x-len"), "10")
        XCTAssertEqual(s.upstream("x-bytes"), "lowo")
        XCTAssertEqual(s.upstream("x-type"), "integer")
        XCTAssertEqual(s.upstream("content-length"), "8")
        XCTAssertEqual(s.upstreamBodyString, "changed!")
        XCTAssertEqual(s.upstreamOrder, ["headers", "data:8:true"])
    }

    func testBodyChunksSeesEachChunkAndHeadersGoAtOnce() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h)
          local seen = {}
          for chunk in h:bodyChunks() do
            h:logInfo("chunk of " .. chunk:length())
            seen[#seen + 1] = chunk:length()
            h:streamInfo():dynamicMetadata():set("lua", "chunks", table.concat(seen, ","))
          end
          h:streamInfo():dynamicMetadata():set("lua", "done", "yes")
        end
        """)
        s.sendRequest(method: "POST", headers: [], body: ["abc", "defgh"])
        XCTAssertNotNil(s.upstreamHead)
        XCTAssertEqual(s.dynamic("lua", "chunks"), "3,5")
        XCTAssertEqual(s.dynamic("lua", "done"), "yes")
        XCTAssertEqual(s.upstreamOrder, ["headers", "data:3:false", "data:5:true"])
    }

    func testTrailersNilWithoutAndPresentWith() throws {
        let code = """
        function envoy_on_request(h)
          for _ in h:bodyChunks() do end
          local t = h:trailers()
          h:streamInfo():dynamicMetadata():set("lua", "t", t and t:get("x-t") or "nil")
        end
        """
        let (a, _) = try stream(code)
        a.sendRequest(method: "POST", body: ["x"])
        XCTAssertEqual(a.dynamic("lua", "t"), "nil")
        let (b, _) = try stream(code)
        b.sendRequest(method: "POST", body: ["x"], trailers: [("x-t", "v")])
        XCTAssertEqual(b.dynamic("lua", "t"), "v")
        XCTAssertEqual(b.upstreamTrailers?.first(name: "x-t"), "v")
    }

    func testTrailersAfterBufferedBody() throws {
        let code = """
        function envoy_on_request(h)
          local b = h:body()
          local t = h:trailers()
          h:headers():add("x-t", t and t:get("x-t") or "nil")
          h:headers():add("x-len", b:length())
        end
        """
        let (a, _) = try stream(code)
        a.sendRequest(method: "POST", body: ["abc"], trailers: [("x-t", "v")])
        XCTAssertEqual(a.upstream("x-t"), "v")
        XCTAssertEqual(a.upstream("x-len"), "3")
        XCTAssertEqual(a.upstreamBodyString, "abc")
        XCTAssertEqual(a.upstreamOrder, ["headers", "data:3:false", "trailers"])
        let (b, _) = try stream(code)
        b.sendRequest(method: "POST", body: ["abc"])
        XCTAssertNil(b.upstreamHead, "waits a tick to learn that no trailers follow")
        loop.run()
        XCTAssertEqual(b.upstream("x-t"), "nil")
        XCTAssertEqual(b.upstreamOrder, ["headers", "data:3:true"])
    }

    func testTrailersAskedAgainAfterTheyNeverCameAnswerNilAtOnce() throws {
        let (s, factory) = try stream("""
        function envoy_on_request(h)
          local b = h:body()
          local seen = {}
          for i = 1, 3 do seen[i] = tostring(h:trailers()) end
          h:headers():add("x-t", table.concat(seen, ","))
        end
        """)
        s.sendRequest(method: "POST", body: ["abc"])
        loop.run()
        XCTAssertEqual(s.upstream("x-t"), "nil,nil,nil")
        XCTAssertEqual(s.upstreamBodyString, "abc")
        XCTAssertNil(LuaTest.vm(factory, loop).lastError)
    }

    func testRespondEndsScriptAndMemoryStaysBounded() throws {
        let code = """
        function envoy_on_request(h)
          h:respond({[":status"] = "503", ["x-why"] = "because"}, "nope")
          h:streamInfo():dynamicMetadata():set("lua", "after", "ran")
        end
        """
        let factory = try LuaTest.factory(code)
        let vm = LuaTest.vm(factory, loop)
        func once() throws {
            let s = try ChainHarness(eventLoop: loop, factories: [factory])
            s.sendRequest()
            XCTAssertEqual(s.localReply?.status, 503)
            XCTAssertEqual(s.localReply?.headers.first(name: "content-length"), "4")
            XCTAssertEqual(s.localReply?.headers.first(name: "x-why"), "because")
            XCTAssertEqual(s.localReply?.body, "nope")
            XCTAssertNil(s.dynamic("lua", "after"))
            XCTAssertNil(s.upstreamHead)
            s.complete()
        }
        for _ in 0..<50 { try once() }
        vm.collectGarbage()
        let before = vm.memoryInUse
        for _ in 0..<2000 { try once() }
        vm.collectGarbage()
        XCTAssertLessThan(vm.memoryInUse - before, 16 * 1024, "VM memory grew from \(before) to \(vm.memoryInUse)")
        XCTAssertEqual(vm.errors, 0)
        XCTAssertEqual(vm.executions, 2050)
    }

    func testDynamicMetadataRoundTripAcrossDirections() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h)
          h:streamInfo():dynamicMetadata():set("envoy.lua", "user", "alice")
        end
        function envoy_on_response(h)
          local md = h:streamInfo():dynamicMetadata()
          h:headers():add("x-user", md:get("envoy.lua")["user"])
          for ns, t in md:pairs() do h:headers():add("x-ns", ns) end
        end
        """)
        s.sendRequest()
        XCTAssertEqual(s.dynamic("envoy.lua", "user"), "alice")
        s.sendResponse()
        XCTAssertEqual(s.client("x-user"), "alice")
        XCTAssertEqual(s.client("x-ns"), "envoy.lua")
    }

    func testRemoteAddressHonoursForwardedFor() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h)
          local si = h:streamInfo()
          h:headers():add("x-remote", si:downstreamRemoteAddress())
          h:headers():add("x-direct", si:downstreamDirectRemoteAddress())
          h:headers():add("x-local", si:downstreamLocalAddress())
          h:headers():add("x-proto", si:protocol())
          h:headers():add("x-ssl", tostring(h:connection():ssl()))
        end
        """)
        s.sendRequest(headers: [("x-forwarded-for", "203.0.113.9, 10.0.0.1")])
        XCTAssertEqual(s.upstream("x-remote"), "203.0.113.9:0")
        XCTAssertEqual(s.upstream("x-direct"), "192.0.2.7:5555")
        XCTAssertEqual(s.upstream("x-local"), "10.1.1.1:8080")
        XCTAssertEqual(s.upstream("x-proto"), "HTTP/1.1")
        XCTAssertEqual(s.upstream("x-ssl"), "nil")
    }

    func testMutationAfterHeadersPassedRaisesAndFailOpenContinues() throws {
        let (s, factory) = try stream("""
        function envoy_on_request(h)
          local hd = h:headers()
          for _ in h:bodyChunks() do end
          hd:add("x-late", "1")
        end
        """)
        s.sendRequest(method: "POST", body: ["ab", "cd"])
        let vm = LuaTest.vm(factory, loop)
        XCTAssertEqual(vm.errors, 1)
        XCTAssertEqual(vm.lastError, "header map can no longer be modified")
        XCTAssertNil(s.upstream("x-late"))
        XCTAssertEqual(s.upstreamBodyString, "abcd")
        XCTAssertTrue(s.upstreamEnded)
        XCTAssertNil(s.localReply)
    }

    func testFailCloseAnswers500() throws {
        let (s, factory) = try stream("function envoy_on_request(h) error('boom') end", failStrategy: "FAIL_CLOSE")
        s.sendRequest()
        XCTAssertEqual(s.localReply?.status, 500)
        XCTAssertNil(s.upstreamHead)
        XCTAssertEqual(LuaTest.vm(factory, loop).lastError, "test:1: boom")
    }

    func testRouteMetadataAndFilterContext() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          h:headers():add("x-md", tostring(h:metadata():get("team")))
          h:headers():add("x-ctx", h:filterContext().greeting .. h:filterContext().n)
          h:clearRouteCache()
        end
        """, pluginConfig: .object(["greeting": .string("hi"), "n": .number(3)]))
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        let route = Route(name: "r1", match: RouteMatch(prefix: "/"), route: RouteAction(cluster: "c"),
                          perFilterConfig: ["meshd.lua": .object(["metadata": .object(["team": .string("blue")])])])
        s.route = SelectedRoute(virtualHost: "vh", compiled: try CompiledRoute(route, at: "r"))
        s.sendRequest()
        XCTAssertEqual(s.upstream("x-md"), "blue")
        XCTAssertEqual(s.upstream("x-ctx"), "hi3")
        XCTAssertEqual(s.routeCacheClears, 1)
    }
}

