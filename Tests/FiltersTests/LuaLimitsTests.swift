import CLuaGuard
@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters

/// Plugins must not be able to stall a loop: the instruction budget and the time bound hold
/// whatever the script does, and one stream's coroutine is only ever resumed by its events.
final class LuaLimitsTests: XCTestCase {
    let loop = EmbeddedEventLoop()
    /// How long a bounded run may take on a loaded machine: far below what the unbounded
    /// loops would take (forever, or 2^63 steps), so exceeding it still means "not bounded".
    static let ended = Duration.seconds(20)

    private func run(_ code: String, failStrategy: String = "FAIL_OPEN", instructions: Int? = nil,
                     limits: [String: JSONValue] = [:]) throws -> (ChainHarness, LuaVM, Duration) {
        let factory = try LuaTest.factory(code, failStrategy: failStrategy, instructions: instructions, limits: limits)
        let vm = LuaTest.vm(factory, loop)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        let start = ContinuousClock.now
        s.sendRequest()
        return (s, vm, ContinuousClock.now - start)
    }

    /// Loops that catch the budget error where the script cannot yield: inside C callbacks,
    /// nested coroutines and message handlers. Each one kept the loop forever before.
    static let catchingLoops = [
        "gsub": #"string.gsub("x", ".", function() while true do pcall(function() while true do end end) end end)"#,
        "sort": """
            table.sort({3, 1, 2}, function(a, b)
              while true do xpcall(function() while true do end end, function(e) return e end) end
            end)
            """,
        "tostring": """
            tostring(setmetatable({}, {__tostring = function()
              while true do pcall(function() while true do end end) end
            end}))
            """,
        "coroutine": """
            local co = coroutine.wrap(function() while true do pcall(function() while true do end end) end end)
            while true do pcall(co) end
            """,
        "handler": "while true do xpcall(function() while true do end end, function() while true do end end) end",
        // A to-be-closed variable whose __close loops, in a coroutine the limit ends.
        "close": """
            coroutine.wrap(function()
              local guard <close> = setmetatable({}, {__close = function() while true do end end})
              while true do end
            end)()
            """,
    ]

    func testBudgetCannotBeCaughtInsideCCallbacks() throws {
        for (shape, loop) in Self.catchingLoops.sorted(by: { $0.key < $1.key }) {
            let (s, vm, elapsed) = try run("function envoy_on_request(h)\n\(loop)\nend", failStrategy: "FAIL_CLOSE",
                                           instructions: 200_000, limits: ["maxRunMs": .number(60_000)])
            XCTAssertEqual(vm.lastError, "instruction budget exceeded", shape)
            XCTAssertEqual(s.localReply?.status, 503, "\(shape): a limit under FAIL_CLOSE answers 503")
            XCTAssertEqual(s.counters.values[vm.plugin.errorsKey], 1, shape)
            XCTAssertLessThan(elapsed, Self.ended, shape)
        }
    }

    func testBudgetHoldsInTopLevelCode() throws {
        let (s, vm, _) = try run("""
        while true do pcall(function() while true do end end) end
        function envoy_on_request(h) end
        """, instructions: 200_000, limits: ["maxRunMs": .number(60_000)])
        XCTAssertEqual(vm.loadError, "instruction budget exceeded")
        XCTAssertNotNil(s.upstreamHead, "FAIL_OPEN: the request goes on")
    }

    func testTimeBoundEndsACatchingLoop() throws {
        // The instruction budget is far away: the 50 ms bound ends it.
        let (s, vm, elapsed) = try run("function envoy_on_request(h)\n\(Self.catchingLoops["gsub"]!)\nend",
                                       failStrategy: "FAIL_CLOSE", instructions: 1 << 40, limits: ["maxRunMs": .number(50)])
        XCTAssertEqual(vm.lastError, "time budget exceeded (50 ms)")
        XCTAssertEqual(s.localReply?.status, 503)
        XCTAssertGreaterThanOrEqual(elapsed, Duration.milliseconds(50))
        XCTAssertLessThan(elapsed, Self.ended)
    }

    /// Instructions that each take milliseconds (joining 64 MiB of strings): the hook's own
    /// clock check comes only every thousand instructions, the watchdog at once.
    func testWatchdogInterruptsExpensiveInstructions() throws {
        let before = meshd_guard_interrupts()
        let (_, vm, elapsed) = try run("""
        function envoy_on_request(h)
          local s = string.rep("x", 8 << 20)
          while true do local t = s .. s .. s .. s .. s .. s .. s .. s end
        end
        """, instructions: 1 << 40, limits: ["maxRunMs": .number(50), "memoryBytes": .number(Double(256 << 20))])
        XCTAssertEqual(vm.lastError, "time budget exceeded (50 ms)")
        XCTAssertGreaterThan(meshd_guard_interrupts(), before, "the watchdog signalled the loop's thread")
        XCTAssertLessThan(elapsed, Duration.seconds(2))
    }

    func testCLoopsAreBounded() throws {
        let cases = [
            // The stock string.rep copies an empty string 2^63 times.
            "rep": #"local r = string.rep("", math.maxinteger) .. string.rep("", math.maxinteger, "")"#,
            "insert": "table.insert(setmetatable({}, {__len = function() return math.maxinteger - 1 end}), 1, 'x')",
            "remove": "table.remove(setmetatable({}, {__len = function() return math.maxinteger end}), 1)",
            "move": "table.move({}, 1, math.maxinteger - 1, 2)",
            "pattern": #"string.rep("a", 300):find(string.rep("a*", 4) .. "b")"#,
            "gmatch": #"for m in string.rep("a", 300):gmatch(string.rep("a*", 4) .. "b") do end"#,
            "plain find": #"string.rep("a", 1 << 20):find(string.rep("a", 1 << 19) .. "b", 1, true)"#,
        ]
        for (name, code) in cases.sorted(by: { $0.key < $1.key }) {
            let (_, vm, elapsed) = try run("function envoy_on_request(h)\n\(code)\nend", limits: ["maxRunMs": .number(50)])
            XCTAssertLessThan(elapsed, Self.ended, name)
            if name == "rep" || name == "plain find" {
                XCTAssertNil(vm.lastError, name)
            } else {
                XCTAssertEqual(vm.lastError, "time budget exceeded (50 ms)", name)
            }
        }
    }

    func testFinalizersAreRefused() throws {
        let (s, vm, elapsed) = try run("""
        function envoy_on_request(h)
          setmetatable({}, {__gc = function() while true do end end})
          collectgarbage()
        end
        """)
        XCTAssertEqual(vm.lastError, "test:2: __gc metamethods are not allowed (finalizers would run outside the plugin's limits)")
        XCTAssertNotNil(s.upstreamHead)
        XCTAssertLessThan(elapsed, Self.ended)
        // setmetatable otherwise works as before.
        let (s2, vm2, _) = try run("""
        function envoy_on_request(h)
          local t = setmetatable({}, {__index = function(_, k) return k .. "!" end})
          h:headers():add("x-mt", t.hi .. tostring(getmetatable(t) ~= nil) .. tostring(pcall(setmetatable, 1)))
        end
        """)
        XCTAssertNil(vm2.lastError)
        XCTAssertEqual(s2.upstream("x-mt"), "hi!truefalse")
    }

    func testVMServesAfterALimitEndedARun() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          if h:headers():get("x-spin") then while true do pcall(string.gsub, "x", ".", function() while true do end end) end end
          h:headers():add("x-ok", "1")
        end
        """, limits: ["maxRunMs": .number(30)])
        let spin = try ChainHarness(eventLoop: loop, factories: [factory])
        spin.sendRequest(headers: [("x-spin", "1")])
        XCTAssertEqual(LuaTest.vm(factory, loop).lastError, "time budget exceeded (30 ms)")
        for _ in 0..<3 {
            let s = try ChainHarness(eventLoop: loop, factories: [factory])
            s.sendRequest()
            XCTAssertEqual(s.upstream("x-ok"), "1")
        }
        // And the limits still hold: the coroutine that ran out (hooks off inside it) is not reused.
        let start = ContinuousClock.now
        let again = try ChainHarness(eventLoop: loop, factories: [factory])
        again.sendRequest(headers: [("x-spin", "1")])
        XCTAssertEqual(LuaTest.vm(factory, loop).lastError, "time budget exceeded (30 ms)")
        XCTAssertLessThan(ContinuousClock.now - start, Self.ended)
    }

    // MARK: coroutines

    /// Request A parks in body(); request B got A's coroutine from a global and resumes it.
    func testAnotherRequestCannotResumeAParkedCoroutine() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local m = h:streamInfo():dynamicMetadata()
          if h:headers():get("x-park") then
            parked = coroutine.running()
            local body = h:body()
            m:set("t", "body", type(body) == "string" and body or body:getBytes(0, body:length()))
          else
            local ok, err = coroutine.resume(parked, "from B")
            m:set("t", "resume", tostring(ok) .. ": " .. tostring(err))
            m:set("t", "close", select(2, pcall(coroutine.close, parked)))
          end
        end
        """)
        let a = try ChainHarness(eventLoop: loop, factories: [factory])
        a.sendRequestHeaders(headers: [("x-park", "1")])
        let b = try ChainHarness(eventLoop: loop, factories: [factory])
        b.sendRequest()
        XCTAssertEqual(b.dynamic("t", "resume"), "false: cannot resume a request handler's coroutine")
        XCTAssertEqual(b.dynamic("t", "close"), "cannot close a request handler's coroutine")
        XCTAssertNil(a.dynamic("t", "body"), "A still waits for its body")
        a.sendRequestData("A's body", end: true)
        XCTAssertEqual(a.dynamic("t", "body"), "A's body")
        XCTAssertNil(LuaTest.vm(factory, loop).lastError)
    }

    func testScriptCoroutinesStillWork() throws {
        let (s, vm, _) = try run("""
        function envoy_on_request(h)
          local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
          local co = coroutine.create(function(a) local b = coroutine.yield(a + 1); error("stop " .. b, 0) end)
          local r = {gen(), gen(), gen()}
          r[#r + 1] = select(2, coroutine.resume(co, 1))
          r[#r + 1] = select(2, coroutine.resume(co, 5))
          r[#r + 1] = coroutine.status(co)
          r[#r + 1] = select(2, pcall(coroutine.wrap(function() error("boom") end)))
          r[#r + 1] = tostring(coroutine.close(coroutine.create(function() end)))
          h:headers():add("x-co", table.concat(r, ","))
        end
        """)
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-co"), "1,2,3,2,stop 5,dead,test:8: boom,true")
    }

    func testXpcallMayStillWaitAndHandleErrors() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local ok, n = xpcall(function() return h:body():length() end, function(e) return "handled: " .. e end)
          local bad, msg = xpcall(function() error("boom", 0) end, function(e) return "handled: " .. e end)
          h:headers():add("x-xpcall", tostring(ok) .. " " .. n .. ", " .. tostring(bad) .. " " .. msg)
        end
        """)
        let s = try ChainHarness(eventLoop: loop, factories: [factory])
        s.sendRequest(method: "POST", body: ["abc", "de"])
        XCTAssertNil(LuaTest.vm(factory, loop).lastError)
        XCTAssertEqual(s.upstream("x-xpcall"), "true 5, false handled: boom")
    }

    // MARK: httpCall

    /// Connections that never come: every call stays in flight until a test answers it.
    final class PendingUpstream: UpstreamClient {
        var waiting: [(Result<(UpstreamConnection, String), UpstreamFailure>) -> Void] = []
        func connection(for cluster: Cluster, _ done: @escaping (Result<(UpstreamConnection, String), UpstreamFailure>) -> Void) {
            waiting.append(done)
        }
        func failAll() {
            let all = waiting
            waiting = []
            for done in all { done(.failure(.connectFailure("test"))) }
        }
    }

    func testHttpCallsInFlightAreBoundedPerStreamAndPerPlugin() throws {
        let factory = try LuaTest.factory("""
        function envoy_on_request(h)
          local started, err = 0, "none"
          for i = 1, 20 do
            local ok, e = pcall(h.httpCall, h, "svc", {[":method"] = "GET", [":path"] = "/", [":authority"] = "svc"},
                                nil, 0, true)
            if ok then started = started + 1 else err = e; break end
          end
          h:headers():add("x-calls", started .. " " .. err)
        end
        """, limits: ["maxPendingCallsPerStream": .number(5), "maxPendingCalls": .number(8)])
        let upstream = PendingUpstream()
        let bootstrap = Bootstrap(clusters: [Cluster(name: "svc", endpoints: [])])
        func send() throws -> String? {
            let s = try ChainHarness(eventLoop: loop, factories: [factory], bootstrap: bootstrap)
            s.upstreamClient = upstream
            s.sendRequest()
            return s.upstream("x-calls")
        }
        XCTAssertEqual(try send(), "5 too many httpCall()s in flight (limits.maxPendingCallsPerStream = 5)")
        XCTAssertEqual(try send(), "3 too many httpCall()s in flight (limits.maxPendingCalls = 8 on this event loop)")
        XCTAssertEqual(upstream.waiting.count, 8)
        // Answered (here: failed) calls free their places.
        upstream.failAll()
        loop.run()
        XCTAssertEqual(LuaTest.vm(factory, loop).calls.count, 0)
        XCTAssertEqual(try send(), "5 too many httpCall()s in flight (limits.maxPendingCallsPerStream = 5)")
    }

    // MARK: config

    func testLimitsAreParsedAndCheckedByName() throws {
        let config = try LuaPluginConfig(config: .object([
            "inlineCode": .string("x = 1"),
            "limits": .object(["maxRunMs": .number(250), "maxPendingCalls": .number(9), "maxPendingCallsPerStream": .number(2),
                               "maxDynamicMetadataBytes": .number(100), "sharedDicts": .object(["d": .number(4096)])]),
        ]))
        XCTAssertEqual(config.limits, LuaLimits(maxRunMs: 250, maxPendingCalls: 9, maxPendingCallsPerStream: 2,
                                                maxDynamicMetadataBytes: 100, sharedDicts: ["d": 4096]))
        XCTAssertEqual(LuaLimits().maxRunMs, 100)
        for (limits, path) in [(["maxRunMS": JSONValue.number(5)], "limits.maxRunMS"), (["maxRunMs": .number(0)], "limits.maxRunMs"),
                               (["sharedDicts": .object(["d": .number(-1)])], "limits.sharedDicts.d")] {
            XCTAssertThrowsError(try LuaPluginConfig(config: .object(["inlineCode": .string("x = 1"), "limits": .object(limits)]))) {
                XCTAssertEqual(($0 as? ConfigError)?.path, path)
            }
        }
        let plugin = try LuaPluginConfig(plugin: LuaPlugin(name: "p", inlineCode: "x = 1",
                                                           limits: LuaPluginLimits(maxRunMs: 20, sharedDicts: ["d": 10])))
        XCTAssertEqual(plugin.limits.maxRunMs, 20)
        XCTAssertEqual(plugin.limits.sharedDicts, ["d": 10])
        XCTAssertNotEqual(plugin.versionKey, try LuaPluginConfig(plugin: LuaPlugin(name: "p", inlineCode: "x = 1")).versionKey)
    }
}
