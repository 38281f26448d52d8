@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters

/// The per-request bridge between streams and the VM: objects handed to a run, the header
/// map's reads, the VM lookup and the stats a run adds.
final class LuaBridgeTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    /// As in Envoy, `headers()` hands one object per run, and an object of a finished run
    /// (a header map kept in a global) is refused in the next.
    func testHeaderMapIsOneObjectPerRun() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          h:headers():add("x-same", tostring(rawequal(h:headers(), h:headers())))
          if saved then saved:add("x-stale", "1") end
          saved = h:headers()
        end
        """)
        let vm = LuaTest.vm(factory, loop)
        let first = try ChainHarness(eventLoop: loop, factories: [factory])
        first.sendRequest()
        XCTAssertEqual(first.upstream("x-same"), "true")
        XCTAssertNil(vm.lastError)
        let second = try ChainHarness(eventLoop: loop, factories: [factory])
        second.sendRequest()
        XCTAssertEqual(vm.lastError, "object used outside of proper scope")
        XCTAssertNil(second.upstream("x-stale"))
    }

    func testGetJoinsRepeatedValuesAndIgnoresCase() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local m = h:headers()
          m:add("x-got", tostring(m:get("x-multi")) .. "|" .. tostring(m:get("X-ONE")) .. "|"
            .. tostring(m:get("x-absent")) .. "|" .. tostring(m:get(":path")) .. "|" .. tostring(m:get("x-on")))
        end
        """)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest(path: "/p", headers: [("X-Multi", "a"), ("x-one", "1"), ("x-multi", "b")])
        XCTAssertEqual(s.upstream("x-got"), "a,b|1|nil|/p|nil")
    }

    /// Runs reach the loop's stats at the end of the loop tick, added together.
    func testRunsAreCountedInTheLoopStats() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h) end
        function envoy_on_response(h) end
        """)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest()
        s.sendResponse()
        s.complete()
        loop.run()
        XCTAssertEqual(s.counters.values[factory.plugin.executionsKey], 2)
        let other = try ChainHarness(eventLoop: loop, factories: [factory])
        other.sendRequest()
        loop.run()
        XCTAssertEqual(other.counters.values[factory.plugin.executionsKey], 1)
        XCTAssertEqual(s.counters.values[factory.plugin.executionsKey], 2)
    }

    /// One VM per (version, loop), whatever the order of the lookups: the thread's cache of
    /// lookups must not hand one loop's or one version's VM to another.
    func testOneVMPerVersionAndLoop() throws {
        let other = EmbeddedEventLoop()
        let versions = try (0..<6).map { i in
            try LuaTest.factory("x = \(i)\nfunction envoy_on_request(h) h:headers():add('x-v', tostring(x)) end")
        }
        var seen: [ObjectIdentifier: Int] = [:]
        for round in 0..<3 {
            for (i, f) in versions.enumerated() {
                for (l, eventLoop) in [loop, other].enumerated() {
                    let vm = try XCTUnwrap(f.vm(for: eventLoop))
                    let key = ObjectIdentifier(vm)
                    if round == 0 {
                        XCTAssertNil(seen[key], "version \(i) loop \(l) shares a VM")
                        seen[key] = i * 2 + l
                    } else {
                        XCTAssertEqual(seen[key], i * 2 + l, "version \(i) loop \(l) round \(round)")
                    }
                }
            }
        }
        let s = try ChainHarness(eventLoop: other, factories: [versions[4]])
        s.sendRequest()
        XCTAssertEqual(s.upstream("x-v"), "4")
    }
}
