@testable import FilterHost
import NIOCore
import NIOEmbedded
import XCTest
@testable import LuaRuntime
@testable import Filters

/// The filter of a stream that ended cleanly serves a later stream of the loop
/// (`LuaVMHost`): it starts as new, and nothing of the earlier stream reaches it.
final class LuaFilterReuseTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func stream(_ factory: LuaFilterFactory) throws -> ChainHarness {
        try ChainHarness(eventLoop: loop, factories: [factory])
    }

    func testACleanStreamsFilterServesTheNextStreamAsNew() throws {
        let factory = try LuaTest.factory("""
        n = 0
        function envoy_on_request(h)
          n = n + 1
          h:headers():add("x-n", tostring(n))
          h:headers():add("x-seen", tostring(h:streamInfo():dynamicMetadata():get("lua")))
          h:streamInfo():dynamicMetadata():set("lua", "n", tostring(n))
          if saved then saved:add("x-stale", "1") end
          saved = h:headers()
        end
        function envoy_on_response(h) h:headers():add("x-r", tostring(n)) end
        """)
        let vm = LuaTest.vm(factory, loop)
        let first = try stream(factory)
        first.sendRequest()
        first.sendResponse()
        first.complete()
        XCTAssertNil(vm.lastError)

        let second = try stream(factory)
        XCTAssertTrue(second.filters[0] === first.filters[0], "the first stream's filter is reused")
        second.sendRequest()
        second.sendResponse()
        XCTAssertEqual(second.upstream("x-n"), "2")
        XCTAssertEqual(second.upstream("x-seen"), "nil", "metadata is the stream's, not the filter's")
        XCTAssertEqual(second.dynamic("lua", "n"), "2")
        XCTAssertEqual(second.client("x-r"), "2")
        // A header map the first stream's run handed out stays dead on the same filter.
        XCTAssertEqual(vm.lastError, "object used outside of proper scope")
        XCTAssertNil(second.upstream("x-stale"))
        XCTAssertEqual(vm.executions, 4)
    }

    /// A run that waited (the body), failed or replied may still involve its stream later
    /// (a task on the loop, held headers): its filter is never handed to another stream.
    func testAFilterWhoseRunWaitedFailedOrRepliedIsNotReused() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local how = h:headers():get("x-how")
          if how == "body" then h:body() end
          if how == "fail" then error("boom") end
          if how == "respond" then h:respond({[":status"] = "403"}, "no") end
        end
        """)
        for how in ["body", "fail", "respond"] {
            let first = try stream(factory)
            first.sendRequest(method: "POST", headers: [("x-how", how)], body: how == "body" ? ["abc"] : [])
            first.complete()
            let second = try stream(factory)
            XCTAssertFalse(second.filters[0] === first.filters[0], how)
            second.complete()
        }
    }

    /// A kept filter holds neither its factory nor its VM: the version and its VMs still go
    /// with the last snapshot and stream that use them.
    func testAKeptFilterHoldsNoVM() throws {
        weak var weakVM: LuaVM?
        weak var weakFilter: LuaFilter?
        do {
            let factory = try LuaTest.factory("function envoy_on_request(h) h:headers():add('x', '1') end")
            weakVM = LuaTest.vm(factory, loop)
            let s = try stream(factory)
            s.sendRequest()
            s.complete()
            let kept = try XCTUnwrap(s.filters[0] as? LuaFilter)
            XCTAssertNil(kept.vm, "kept, without its VM")
            weakFilter = kept
        }
        XCTAssertNil(weakVM)
        XCTAssertNil(weakFilter)
    }
}
