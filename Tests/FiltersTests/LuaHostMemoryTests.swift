@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters

/// The memory cap covers what a plugin makes the host allocate: JSON text, dynamic
/// metadata, shared dictionaries.
final class LuaHostMemoryTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func run(_ code: String, limits: [String: JSONValue] = [:]) throws -> (ChainHarness, LuaVM) {
        let factory = try LuaTest.factory(code, limits: limits)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest()
        return (s, LuaTest.vm(factory, loop))
    }

    func testJSONEncodeOfOneStringManyTimesStaysUnderTheCap() throws {
        let cap = 4 << 20
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local s = string.rep("x", 512 << 10)
          local t = {}
          for i = 1, 40 do t[i] = s end
          local ok, err = pcall(meshd.json.encode, t)
          h:headers():add("x-encode", tostring(ok) .. " " .. (ok and #err or err))
          h:headers():add("x-small", meshd.json.encode({a = {1, 2}, b = s:sub(1, 3)}))
        end
        """, limits: ["memoryBytes": .number(Double(cap)), "maxRunMs": .number(10_000)])
        XCTAssertNil(vm.lastError)
        let answer = try XCTUnwrap(s.upstream("x-encode"))
        XCTAssertTrue(answer.hasPrefix("false json.encode: result too large (over the "), answer)
        XCTAssertTrue(["{\"a\":[1,2],\"b\":\"xxx\"}", "{\"b\":\"xxx\",\"a\":[1,2]}"].contains(s.upstream("x-small")))
        XCTAssertLessThanOrEqual(vm.memoryInUse, cap)
    }

    func testJSONDecodeCannotInflatePastTheCap() throws {
        let cap = 8 << 20
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local text = "[" .. string.rep("0,", 1 << 20) .. "0]"
          local ok, err = pcall(meshd.json.decode, text)
          h:headers():add("x-decode", tostring(ok) .. " " .. tostring(err))
        end
        """, limits: ["memoryBytes": .number(Double(cap)), "maxRunMs": .number(10_000)])
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-decode"), "false json.decode: not enough memory")
        vm.collectGarbage()
        XCTAssertLessThanOrEqual(vm.memoryInUse, cap)
    }

    func testDynamicMetadataIsBoundedPerStream() throws {
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local m = h:streamInfo():dynamicMetadata()
          local v = string.rep("v", 1000)
          local n, err = 0, "none"
          for i = 1, 100 do
            local ok, e = pcall(m.set, m, "ns", "k" .. i, v)
            if ok then n = n + 1 else err = e; break end
          end
          m:set("ns", "k1", "small")   -- replacing frees what the old value took
          local ok = pcall(m.set, m, "ns", "again", v)
          h:headers():add("x-meta", n .. " " .. err .. " " .. tostring(ok))
        end
        """, limits: ["maxDynamicMetadataBytes": .number(8192)])
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-meta"), "8 dynamic metadata limit exceeded (8192 bytes per stream) true")
        var total = 0
        for (ns, values) in s.streamInfo.dynamicMetadata {
            for (k, v) in values { total += ns.utf8.count + k.utf8.count + (v.stringValue ?? "").utf8.count }
        }
        XCTAssertLessThanOrEqual(total, 8192)
    }

    func testSharedDictEvictsLeastRecentlyUsedWithinItsCapacity() throws {
        let name = "lru-\(UInt64.random(in: 0...UInt64.max))"
        let (s, vm) = try run("""
        function envoy_on_request(h)
          local d = meshd.shared("\(name)")
          local v = string.rep("v", 1000)
          d:set("keep", v)
          for i = 1, 100 do
            d:set("k" .. i, v)
            d:get("keep")          -- used all along: never the one evicted
          end
          local ok, err = pcall(d.set, d, "huge", string.rep("x", 10000))
          h:headers():add("x-dict", tostring(d:get("keep") ~= nil) .. " " .. tostring(d:get("k1")) .. " " ..
                          tostring(d:get("k100") ~= nil) .. " " .. tostring(ok) .. " " .. tostring(err))
        end
        """, limits: ["sharedDicts": .object([name: .number(8192)])])
        XCTAssertNil(vm.lastError)
        let dict = LuaSharedDict.named(name)
        XCTAssertEqual(s.upstream("x-dict"), "true nil true false shared dict '\(name)': an entry of 10068 bytes does not fit its capacity of 8192 bytes")
        XCTAssertEqual(dict.capacity, 8192)
        XCTAssertLessThanOrEqual(dict.bytesUsed, 8192)
        XCTAssertEqual(dict.count, 7, "8192 / (1000 + a short key + 64)")
    }

    func testUndeclaredSharedDictGetsTheDefaultCapacity() throws {
        let name = "default-\(UInt64.random(in: 0...UInt64.max))"
        let (_, vm) = try run("""
        function envoy_on_request(h)
          local d = meshd.shared("\(name)")
          local v = string.rep("v", 64 << 10)
          for i = 1, 40 do d:set("k" .. i, v) end
          d:incr("n", 1)
        end
        """)
        XCTAssertNil(vm.lastError)
        let dict = LuaSharedDict.named(name)
        XCTAssertEqual(dict.capacity, LuaSharedDict.defaultCapacity)
        XCTAssertLessThanOrEqual(dict.bytesUsed, LuaSharedDict.defaultCapacity)
        XCTAssertEqual(dict.get("n"), .integer(1))
        XCTAssertNil(dict.get("k1"))
        XCTAssertNotNil(dict.get("k40"))
    }
}
