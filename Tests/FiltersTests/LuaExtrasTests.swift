@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOCore
import NIOEmbedded
import NIOPosix
import XCTest
import Transport
@testable import LuaRuntime
@testable import PluginTesting

/// meshd.json, meshd.shared, crypto and the small helpers.
final class LuaExtrasTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func headers(_ code: String) throws -> (ChainHarness, LuaVM) {
        let factory = try LuaTest.factory(code)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest()
        return (s, LuaTest.vm(factory, loop))
    }

    /// handle:span() (a meshd extension): tags set in Lua reach the span this hop reports.
    func testSpanTagsSetInLuaReachTheSpan() throws {
        let (s, _) = try headers(#"""
        function envoy_on_request(h)
          local span = h:span()
          span:setTag("plugin.user", h:headers():get("x-user") or "none")
          span:setTag("http.method", "OVERRIDDEN")
          h:headers():add("x-tag", span:getTag("plugin.user"))
          h:headers():add("x-missing", tostring(span:getTag("nope")))
          h:headers():add("x-trace", span:traceId() .. "/" .. tostring(span:sampled()))
          local ok, err = pcall(function() for i = 1, 100 do span:setTag("k" .. i, "v") end end)
          h:headers():add("x-limit", tostring(ok) .. ":" .. tostring(err):match("at most %d+ tags") )
        end
        """#)
        XCTAssertEqual(s.upstream("x-tag"), "none")
        XCTAssertEqual(s.upstream("x-missing"), "nil")
        XCTAssertEqual(s.upstream("x-trace"), "/false", "no tracing: empty ids, not sampled")
        XCTAssertEqual(s.upstream("x-limit"), "false:at most 64 tags")
        XCTAssertEqual(s.streamInfo.spanTags["plugin.user"], "none")
        XCTAssertEqual(s.streamInfo.spanTags.count, 64)
        var info = s.streamInfo
        info.trace = TraceContext(traceIDHigh: 1, traceIDLow: 2, spanID: 3, sampled: true)
        let span = Tracer(config: TracingConfig(samplingPercentage: 100)).span(info, context: info.trace!, kind: .server,
                                                                             scheme: "http", peer: nil)
        XCTAssertTrue(span.tags.contains { $0 == ("plugin.user", "none") })
        XCTAssertEqual(span.tags.filter { $0.0 == "http.method" }.map(\.1), ["OVERRIDDEN"], "a plugin's tag replaces the standard one")
    }

    func testJSONRoundTrip() throws {
        let (s, vm) = try headers(#"""
        function envoy_on_request(h)
          local json = meshd.json
          local v = json.decode('{"a":[1,2,{"b":"x\\n\\u00e9\\ud83d\\ude00"}],"c":1.5,"d":true,"e":null,"f":-7}')
          local again = json.decode(json.encode(v))
          local hd = h:headers()
          hd:add("x-b", again.a[3].b)
          hd:add("x-types", math.type(again.a[1]) .. "," .. math.type(again.c) .. "," .. tostring(again.d) ..
            "," .. tostring(again.e == json.null) .. "," .. again.f)
          hd:add("x-enc", json.encode({1, 2, 3}) .. json.encode({}) .. json.encode({k = {n = 2.0}}) ..
            json.encode("q\"\\\t") .. json.encode(0.25))
          local ok, err = pcall(json.decode, "{bad")
          hd:add("x-err", tostring(ok) .. ":" .. err)
        end
        """#)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-b"), "x\né😀")
        XCTAssertEqual(s.upstream("x-types"), "integer,float,true,true,-7")
        XCTAssertEqual(s.upstream("x-enc"), #"[1,2,3]{}{"k":{"n":2}}"q\"\\\t"0.25"#)
        XCTAssertEqual(s.upstream("x-err"), "false:json.decode: expected a string key at position 2")
    }

    /// Found by fuzzing (FuzzJSON): `1e400` decoded to infinity, which json.encode refuses,
    /// so a decoded document could not be encoded again.
    func testJSONNumbersPastTheDoubleRangeAreRefused() throws {
        let (s, vm) = try headers(#"""
        function envoy_on_request(h)
          local r = {}
          for _, text in ipairs({"1e400", "[-1e999]", "1.7976931348623157e308"}) do
            local ok, v = pcall(meshd.json.decode, text)
            r[#r + 1] = ok and pcall(meshd.json.encode, v) and "encodes" or v
          end
          h:headers():add("x-r", table.concat(r, "|"))
        end
        """#)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-r"), "json.decode: number out of range at position 1|"
                       + "json.decode: number out of range at position 2|encodes")
    }

    /// Found by fuzzing (FuzzLua): a header name that is not ASCII trapped in HTTPHeaders
    /// and took the process down; it is the script's error now.
    func testHeaderNamesThatAreNotASCIIRaise() throws {
        let (s, vm) = try headers(#"""
        function envoy_on_request(h)
          local hd = h:headers()
          local r = {}
          r[#r + 1] = select(2, pcall(hd.add, hd, "x-\u{e9}", "v"))
          r[#r + 1] = select(2, pcall(hd.replace, hd, "\xff", "v"))
          r[#r + 1] = select(2, pcall(h.respond, h, {[":status"] = "200", ["\u{e9}"] = "v"}, "body"))
          hd:remove("\u{e9}")
          hd:add("x-r", table.concat(r, "|"))
        end
        """#)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-r"), "invalid header name (not ASCII): x-\u{e9}|invalid header name (not ASCII): \u{FFFD}|"
                       + "invalid header name (not ASCII): \u{e9}")
    }

    func testSharedDictBasics() throws {
        let name = "basics-\(UInt64.random(in: 0...UInt64.max))"
        let (s, vm) = try headers("""
        function envoy_on_request(h)
          local d = meshd.shared("\(name)")
          d:set("s", "v")
          d:set("b", true)
          d:set("gone", 1, 0.000001)
          local r = { d:get("s"), tostring(d:get("b")), tostring(d:incr("n", 5)), tostring(d:incr("m", 1, 10)),
                      tostring(d:get("missing")) }
          d:delete("s")
          r[#r + 1] = tostring(d:get("s"))
          h:headers():add("x-d", table.concat(r, ","))
        end
        """)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-d"), "v,true,5,11,nil,nil")
        XCTAssertNil(LuaSharedDict.named(name).get("gone"))
    }

    func testSharedDictIncrIsConsistentAcrossLoops() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let name = "ctr-\(UInt64.random(in: 0...UInt64.max))"
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local d = meshd.shared("\(name)")
          for i = 1, 10000 do d:incr("n", 1) end
        end
        """, limits: ["maxRunMs": .number(60_000)])  // 10,000 locked calls: slow in a debug build
        let loops = [group.next(), group.next()]
        XCTAssertFalse(loops[0] === loops[1])
        let runs = loops.map { loop in
            loop.submit {
                let s = try ChainHarness(eventLoop: loop, factories: [factory])
                s.sendRequest()
                return s.upstreamHead != nil && factory.vm(for: loop)?.lastError == nil
            }
        }
        for r in runs { XCTAssertTrue(try r.wait()) }
        XCTAssertEqual(LuaSharedDict.named(name).get("n"), .integer(20_000))
    }

    func testHelpersAndCounters() throws {
        let (s, vm) = try headers("""
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-b64", h:base64Escape("hello?"))
          hd:add("x-ts", math.type(h:timestamp()))
          hd:add("x-tss", tostring(#h:timestampString(EnvoyTimestampResolution.MICROSECOND)))
          local ok, err = h:verifySignature("MD5", h:importPublicKey("bogus", 5), "s", 1, "d", 1)
          hd:add("x-verify", tostring(ok) .. ":" .. err)
          print("printed", 1, true)
        end
        """)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-b64"), "aGVsbG8/")
        XCTAssertEqual(s.upstream("x-ts"), "integer")
        XCTAssertEqual(s.upstream("x-tss"), "16")
        XCTAssertEqual(s.upstream("x-verify"), "false:MD5 is not supported.")
        XCTAssertEqual(vm.executions, 1)
    }

    func testCatalogBuildsLuaFromConfig() throws {
        let builder = try XCTUnwrap(FilterCatalog.registry.builder(named: "meshd.lua"))
        XCTAssertNoThrow(try builder(.object(["inlineCode": .string("function envoy_on_request(h) end")])))
        XCTAssertThrowsError(try builder(.object(["inlineCode": .string("function (")])))
    }
}
