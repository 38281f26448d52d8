@testable import FilterHost
import MeshAPI
import NIOHTTP1
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters
@testable import PluginTesting

/// `meshd plugin test`'s engine: PluginTestRunner and the YAML it reads.
final class PluginTestRunnerTests: XCTestCase {
    private func runner(_ code: String, _ config: PluginTestConfig = PluginTestConfig()) throws -> PluginTestRunner {
        try PluginTestRunner(source: code, name: "t", config: config)
    }

    private func request(method: String = "GET", path: String = "/", headers: [(String, String)] = [],
                         body: [String] = [], trailers: [(String, String)]? = nil) -> PluginTestRequest {
        var r = PluginTestRequest()
        r.method = method
        r.path = path
        r.headers = headers
        r.body = body
        r.trailers = trailers
        return r
    }

    private func response(status: Int = 200, headers: [(String, String)] = [], body: [String] = []) -> PluginTestResponse {
        var r = PluginTestResponse()
        r.status = status
        r.headers = headers
        r.body = body
        return r
    }

    private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    func testRequestAndResponseGoThroughThePlugin() throws {
        let r = try runner("""
        print("loaded")
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-added", hd:get(":path"))
          hd:remove("x-drop")
          local b = h:body()
          b:setBytes(b:getBytes(0, b:length()):upper())
          h:logTrace("t") h:logDebug("d") h:logInfo("i") h:logWarn("w") h:logErr("e") h:logCritical("c")
          h:streamInfo():dynamicMetadata():set("ns", "k", "v")
        end
        function envoy_on_response(h)
          h:headers():replace("x-status", h:headers():get(":status"))
          h:body():setBytes("[" .. h:body():getBytes(0, h:body():length()) .. "]")
        end
        """)
        let result = try r.run(request: request(method: "POST", path: "/p", headers: [("x-drop", "1"), ("content-length", "5")],
                                                body: ["hel", "lo"]),
                               response: response(status: 201, headers: [("content-length", "2")], body: ["ok"]))
        XCTAssertTrue(result.succeeded, "\(result.errors) \(result.stalls)")
        let up = try XCTUnwrap(result.upstreamRequest)
        XCTAssertEqual(up.head.headers.first(name: "x-added"), "/p")
        XCTAssertNil(up.head.headers.first(name: "x-drop"))
        XCTAssertEqual(up.head.headers.first(name: "content-length"), "5")
        XCTAssertEqual(up.head.headers.first(name: "x-forwarded-for"), "127.0.0.1", "the proxy's standard headers")
        XCTAssertEqual(text(up.body), "HELLO")
        XCTAssertTrue(up.complete)
        let resp = try XCTUnwrap(result.response)
        XCTAssertEqual(resp.head.status, 201)
        XCTAssertEqual(resp.head.headers.first(name: "x-status"), "201")
        XCTAssertEqual(resp.head.headers.first(name: "content-length"), "4")
        XCTAssertEqual(text(resp.body), "[ok]")
        XCTAssertNil(result.localReply)
        XCTAssertEqual(result.logs.map { "\($0.level.rawValue):\($0.message)" },
                       ["info:loaded", "trace:t", "debug:d", "info:i", "warning:w", "error:e", "critical:c"])
        XCTAssertEqual(result.dynamicMetadata, ["ns": ["k": .string("v")]])
    }

    func testRespondIsALocalReplyAndTheUpstreamIsNotCalled() throws {
        let r = try runner("""
        function envoy_on_request(h)
          h:respond({[":status"] = "403", ["x-why"] = "no"}, "denied")
        end
        function envoy_on_response(h) h:logInfo("response script ran") end
        """)
        let result = try r.run(request: request())
        XCTAssertTrue(result.succeeded)
        XCTAssertNil(result.upstreamRequest)
        XCTAssertEqual(result.localReply?.status, 403)
        XCTAssertEqual(result.localReply?.origin, .respond)
        XCTAssertEqual(result.localReply?.body, "denied")
        let resp = try XCTUnwrap(result.response)
        XCTAssertEqual(resp.head.status, 403)
        XCTAssertEqual(resp.head.headers.first(name: "x-why"), "no")
        XCTAssertEqual(resp.head.headers.first(name: "content-length"), "6")
        XCTAssertEqual(text(resp.body), "denied")
        XCTAssertEqual(result.logs, [], "a plugin's envoy_on_response does not see its own respond()")
    }

    func testScriptErrorsCarryTheLineAndFailOpenContinues() throws {
        let r = try runner("""
        function envoy_on_request(h)
          h:headers():add("x-before", "1")
          local t = nil
          return t.field
        end
        function envoy_on_response(h)
          error("response broke")
        end
        """)
        let result = try r.run(request: request())
        XCTAssertFalse(result.succeeded)
        XCTAssertEqual(result.errors, [
            .init(phase: "envoy_on_request", message: "t:4: attempt to index a nil value (local 't')"),
            .init(phase: "envoy_on_response", message: "t:7: response broke"),
        ])
        XCTAssertEqual(result.upstreamRequest?.head.headers.first(name: "x-before"), "1")
        XCTAssertEqual(result.response?.head.status, 200)
        XCTAssertEqual(result.logs, [], "the engine's failure lines are reported as errors, not logs")
    }

    func testFailCloseAndInstructionBudget() throws {
        var config = PluginTestConfig()
        config.failStrategy = .failClose
        config.limits.instructions = 100_000
        let r = try runner("function envoy_on_request(h) while true do end end", config)
        let result = try r.run(request: request())
        XCTAssertEqual(result.errors, [.init(phase: "envoy_on_request", message: "instruction budget exceeded")])
        XCTAssertEqual(result.localReply?.status, 503, "a limit, not a script error: the plugin is unavailable")
        XCTAssertEqual(result.localReply?.origin, .failClose)
        XCTAssertNil(result.upstreamRequest)
    }

    func testCompileErrorNamesTheLine() {
        XCTAssertThrowsError(try runner("local a = 1\n\nfunction envoy_on_request(h\n")) { error in
            guard let e = error as? LuaCompileError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.line, 4)
            XCTAssertEqual(e.chunk, "t")
        }
    }

    func testTopLevelErrorFailsEveryRun() throws {
        let r = try runner("error('no config')\nfunction envoy_on_request(h) end")
        for _ in 0..<2 {
            let result = try r.run(request: request())
            XCTAssertEqual(result.errors, [.init(phase: "top-level code", message: "t:1: no config")])
            XCTAssertNotNil(result.upstreamRequest, "FAIL_OPEN")
        }
    }

    func testHttpCallOfflineAnswers503() throws {
        let r = try runner("""
        function envoy_on_request(h)
          local headers, body = h:httpCall("auth", {[":method"] = "POST", [":path"] = "/check",
                                                    [":authority"] = "auth.local"}, "payload", 500)
          h:headers():add("x-call", headers[":status"] .. " " .. body)
          local none = h:httpCall("audit", {[":method"] = "GET", [":path"] = "/a", [":authority"] = "x"}, "", 0, true)
          h:headers():add("x-async", tostring(none))
          h:httpCall("opts", {[":method"] = "GET", [":path"] = "/o", [":authority"] = "x"}, "",
                     {asynchronous = true, timeout_ms = 10})
          local ok, err = pcall(h.httpCall, h, "bad", {[":path"] = "/"}, "", 10)
          h:headers():add("x-err", err)
        end
        """)
        let result = try r.run(request: request())
        XCTAssertTrue(result.succeeded, "\(result.errors)")
        let up = try XCTUnwrap(result.upstreamRequest)
        XCTAssertEqual(up.head.headers.first(name: "x-call"), "503 upstream failure")
        XCTAssertEqual(up.head.headers.first(name: "x-async"), "nil")
        XCTAssertEqual(up.head.headers.first(name: "x-err"), "http call headers must include ':path', ':method', and ':authority'")
        XCTAssertEqual(result.httpCalls, [
            .init(cluster: "auth", method: "POST", path: "/check", authority: "auth.local", asynchronous: false),
            .init(cluster: "audit", method: "GET", path: "/a", authority: "x", asynchronous: true),
            .init(cluster: "opts", method: "GET", path: "/o", authority: "x", asynchronous: true),
        ])
        XCTAssertEqual(try r.run(request: request()).httpCalls.count, 3, "each run lists its own calls")
    }

    func testRunsShareTheVMAndSharedDictionaries() throws {
        let dict = "runner-\(UInt64.random(in: 0...UInt64.max))"
        let r = try runner("""
        local seen = 0
        function envoy_on_request(h)
          seen = seen + 1
          local n = meshd.shared("\(dict)"):incr("n", 1, 0, 60)
          if n > 2 then h:respond({[":status"] = "429"}, "") end
          h:headers():add("x-seen", seen)
        end
        """)
        let statuses = try (0..<3).map { _ in try r.run(request: request()) }
        XCTAssertEqual(statuses.map { $0.upstreamRequest?.head.headers.first(name: "x-seen") }, ["1", "2", nil])
        XCTAssertEqual(statuses.map { $0.response?.head.status }, [200, 200, 429])
        XCTAssertEqual(LuaSharedDict.named(dict).get("n"), .integer(3))
    }

    /// A body the script edited while holding the headers (trailers follow, so the whole
    /// body reaches the upstream only when the headers are let go) keeps its edits: the
    /// offline stream must not drop data it is asked to replace.
    func testABodyEditedWhileTheHeadersWaitKeepsItsEdits() throws {
        let r = try runner("""
        function envoy_on_request(h)
          local b = h:body()
          b:setBytes(b:getBytes(0, b:length()):upper())
          h:headers():add("x-seen", h:trailers():get("x-sum"))
        end
        """)
        let result = try r.run(request: request(method: "POST", path: "/p", body: ["hel", "lo"], trailers: [("x-sum", "5")]))
        XCTAssertTrue(result.succeeded, "\(result.errors) \(result.stalls)")
        let up = try XCTUnwrap(result.upstreamRequest)
        XCTAssertEqual(text(up.body), "HELLO")
        XCTAssertEqual(up.head.headers.first(name: "x-seen"), "5")
    }

    func testBodyChunksTrailersAndBufferLimit() throws {
        let r = try runner("""
        function envoy_on_request(h)
          for chunk in h:bodyChunks() do h:logInfo("chunk " .. chunk:getBytes(0, chunk:length())) end
          local t = h:trailers()
          h:logInfo("trailer " .. (t and t:get("x-sum") or "none"))
        end
        """)
        let result = try r.run(request: request(method: "POST", body: ["ab", "cd"], trailers: [("x-sum", "42")]))
        XCTAssertTrue(result.succeeded)
        XCTAssertEqual(result.logs.map(\.message), ["chunk ab", "chunk cd", "trailer 42"])
        XCTAssertEqual(result.upstreamRequest?.trailers?.first(name: "x-sum"), "42")
        XCTAssertEqual(result.upstreamRequest.map { text($0.body) }, "abcd")

        var config = PluginTestConfig()
        config.bufferLimitBytes = 4
        let buffering = try runner("function envoy_on_request(h) h:body() end", config)
        let big = try buffering.run(request: request(method: "POST", body: ["abc", "def"]))
        XCTAssertEqual(big.localReply?.status, 413)
        XCTAssertEqual(big.localReply?.origin, .bufferLimit)
        XCTAssertNil(big.upstreamRequest)
    }

    func testRouteDownstreamAndClearRouteCache() throws {
        var config = PluginTestConfig()
        config.routeName = "r1"
        config.routeMetadata = .object(["team": .string("blue")])
        config.remoteAddress = "203.0.113.5:4242"
        config.tls = true
        config.pluginConfig = .object(["greeting": .string("hi")])
        let r = try runner("""
        function envoy_on_request(h)
          local hd, si = h:headers(), h:streamInfo()
          hd:add("x-route", si:routeName() .. "/" .. h:metadata():get("team"))
          hd:add("x-remote", si:downstreamDirectRemoteAddress())
          hd:add("x-tls", tostring(h:connection():ssl() ~= nil))
          hd:add("x-ctx", h:filterContext().greeting)
          h:clearRouteCache()
        end
        """, config)
        let result = try r.run(request: request())
        let headers = try XCTUnwrap(result.upstreamRequest?.head.headers)
        XCTAssertEqual(headers.first(name: "x-route"), "r1/blue")
        XCTAssertEqual(headers.first(name: "x-remote"), "203.0.113.5:4242")
        XCTAssertEqual(headers.first(name: "x-tls"), "true")
        XCTAssertEqual(headers.first(name: "x-forwarded-proto"), "https")
        XCTAssertEqual(headers.first(name: "x-ctx"), "hi")
        XCTAssertEqual(result.routeCacheClears, 1)
    }

    // MARK: input files

    func testRequestYAML() throws {
        let r = try PluginTestInput.request(yaml: """
        method: post
        path: /x?y=1
        protocol: HTTP/2
        headers:
          Host: api.example.com
          x-version: 1.10
          accept: [a, b]
          x-empty:
        body: [ab, cd]
        """)
        XCTAssertEqual(r.method, "POST")
        XCTAssertEqual(r.path, "/x?y=1")
        XCTAssertEqual(r.protocolVersion, .http2)
        XCTAssertEqual(r.authority, "api.example.com")
        XCTAssertEqual(r.headers.map { "\($0.0)=\($0.1)" },
                       ["x-version=1.10", "accept=a", "accept=b", "x-empty=", "content-length=4"])
        XCTAssertEqual(r.body, ["ab", "cd"])

        let pairs = try PluginTestInput.request(yaml: """
        headers: [[x-a, "1"], {x-b: "2"}, "x-c: 3", [x-a, "4"]]
        body: one piece
        trailers: {x-t: v}
        """)
        XCTAssertEqual(pairs.headers.map { "\($0.0)=\($0.1)" }, ["x-a=1", "x-b=2", "x-c=3", "x-a=4"],
                       "no content-length with trailers: that body is chunked")
        XCTAssertEqual(pairs.body, ["one piece"])
        XCTAssertEqual(pairs.trailers?.first?.1, "v")
        XCTAssertEqual(try PluginTestInput.request(yaml: "").method, "GET")
    }

    func testBadInputNamesFileLineAndField() {
        func error(_ f: () throws -> Any) -> ConfigError? {
            do { _ = try f() } catch let e as ConfigError { return e } catch { XCTFail("\(error)") }
            return nil
        }
        let unknown = error { try PluginTestInput.request(yaml: "path: /\nheders: {}\n", file: "req.yaml") }
        XCTAssertEqual(unknown?.file, "req.yaml")
        XCTAssertEqual(unknown?.line, 2)
        XCTAssertEqual(unknown?.path, "heders")
        XCTAssertEqual(error { try PluginTestInput.request(yaml: "headers: {a: {b: c}}") }?.path, "headers.a")
        XCTAssertEqual(error { try PluginTestInput.request(yaml: "headers: [[':path', /x]]") }?.path, "headers[0]")
        XCTAssertEqual(error { try PluginTestInput.request(yaml: "path: nope") }?.reason, "must start with /")
        XCTAssertEqual(error { try PluginTestInput.response(yaml: "status: abc") }?.path, "status")
        XCTAssertNotNil(error { try PluginTestInput.response(yaml: "status: [") })
        XCTAssertEqual(error { try PluginTestInput.request(yaml: "- a\n- b") }?.reason, "must be a map")
        let strategy = error { try PluginTestInput.config(yaml: "name: x\nfailStrategy: SOMETIMES\n", file: "c.yaml") }
        XCTAssertEqual(strategy?.path, "failStrategy")
        XCTAssertEqual(strategy?.line, 2)
        XCTAssertEqual(error { try PluginTestInput.config(yaml: "limits: {instructions: -1}") }?.path, "limits.instructions")
        XCTAssertEqual(error { try PluginTestInput.config(yaml: "downstream: {remoteAddress: nowhere}") }?.path,
                       "downstream.remoteAddress")
    }

    func testConfigYAML() throws {
        let c = try PluginTestInput.config(yaml: """
        name: my-plugin
        failStrategy: FAIL_CLOSE
        limits: {instructions: 5000, memoryBytes: 1048576}
        pluginConfig: {n: 3, s: "3", list: [a], nested: {ok: true}}
        route: {name: r2, metadata: {team: red}}
        downstream: {remoteAddress: "[2001:db8::1]:443", tls: true, serverName: api.example.com}
        bufferLimitBytes: 100
        inlineCode: ignored
        """)
        XCTAssertEqual(c.name, "my-plugin")
        XCTAssertEqual(c.failStrategy, .failClose)
        XCTAssertEqual(c.limits, LuaLimits(instructions: 5000, memoryBytes: 1 << 20))
        XCTAssertEqual(c.pluginConfig, .object(["n": .number(3), "s": .string("3"), "list": .array([.string("a")]),
                                                "nested": .object(["ok": .bool(true)])]))
        XCTAssertEqual(c.routeName, "r2")
        XCTAssertEqual(c.routeMetadata, .object(["team": .string("red")]))
        XCTAssertEqual(c.remoteAddress, "[2001:db8::1]:443")
        XCTAssertTrue(c.tls)
        XCTAssertEqual(c.serverName, "api.example.com")
        XCTAssertEqual(c.bufferLimitBytes, 100)
        XCTAssertEqual(c.warnings.count, 1)
        XCTAssertNil(try PluginTestInput.config(yaml: "pluginConfig: {}").name, "the file name is the default")
    }

    func testModulesFromTheConfigAreWhatRequireLoads() throws {
        let c = try PluginTestInput.config(yaml: "modules: {lib.greet: 'return function(n) return \"hi \" .. n end'}")
        let r = try runner("local greet = require('lib.greet')\nfunction envoy_on_request(h) h:headers():add('x-g', greet('a')) end", c)
        let result = try r.run(request: request())
        XCTAssertTrue(result.succeeded, "\(result.errors)")
        XCTAssertEqual(result.upstreamRequest?.head.headers.first(name: "x-g"), "hi a")
        XCTAssertThrowsError(try PluginTestInput.config(yaml: "modules: {m: 'return {'}")) { e in
            XCTAssertEqual((e as? ConfigError)?.path, "modules.m")
        }
    }

    func testAnInvalidMessageFailsTheRun() throws {
        // content-length that does not match the body: an HTTP/1.1 client would wait for 8 more bytes.
        let r = try runner("""
        function envoy_on_response(h) h:headers():replace("content-length", "10") end
        """)
        let result = try r.run(request: request(), response: response(headers: [("content-length", "2")], body: ["ok"]))
        XCTAssertTrue(result.errors.isEmpty)
        XCTAssertFalse(result.succeeded)
        XCTAssertEqual(result.invalid, ["the response to the client is not a valid HTTP message: content-length says 10 but the body has 2 bytes"])

        let bad = try runner("""
        function envoy_on_request(h) h:headers():add("x-split", "a\\r\\nx-injected: 1") end
        function envoy_on_response(h) h:headers():replace(":status", "204") end
        """)
        let badResult = try bad.run(request: request(), response: response(headers: [("content-length", "2")], body: ["ok"]))
        XCTAssertEqual(badResult.invalid, [
            "the request to the upstream is not a valid HTTP message: header x-split has a control character (CR, LF or NUL) in its value",
            "the response to the client is not a valid HTTP message: a 204 response must not have content-length",
            "the response to the client is not a valid HTTP message: a 204 response has a body (2 bytes)",
        ])

        // body(true):setBytes() on a response without a body: a valid message now.
        let made = try runner("function envoy_on_response(h) h:body(true):setBytes('ok') end")
        let madeResult = try made.run(request: request(), response: response())
        XCTAssertTrue(madeResult.succeeded, "\(madeResult.invalid)")
        XCTAssertEqual(text(madeResult.response?.body), "ok")
        XCTAssertEqual(madeResult.response?.head.headers.first(name: "content-length"), "2")
    }
}

/// The plugins in plugins/, run offline (the integration tests run them in a real proxy).
final class ShippedPluginTests: XCTestCase {
    private func plugin(_ name: String, _ pluginConfig: JSONValue) throws -> PluginTestRunner {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try String(contentsOf: root.appendingPathComponent("plugins/\(name).lua"), encoding: .utf8)
        var config = PluginTestConfig()
        config.pluginConfig = pluginConfig
        return try PluginTestRunner(source: source, name: name, config: config)
    }

    private func request(_ headers: [(String, String)] = []) -> PluginTestRequest {
        var r = PluginTestRequest()
        r.headers = headers
        return r
    }

    func testEveryShippedPluginCompilesAndHasAHeader() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("plugins")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".lua") }
        XCTAssertGreaterThanOrEqual(files.count, 6)
        for file in files {
            let source = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            XCTAssertTrue(source.hasPrefix("--[[\n\(file) — "), "\(file) starts with its header comment")
            XCTAssertTrue(source.contains("pluginConfig"), file)
            XCTAssertNoThrow(try LuaScript(source: source, name: file), file)
        }
    }

    func testHeaderRewrite() throws {
        let r = try plugin("header-rewrite", .object([
            "request": .object(["set": .object(["x-env": .string("prod")]), "remove": .array([.string("x-debug")])]),
            "response": .object(["add": .object(["x-served-by": .string("meshd")])]),
        ]))
        let result = try r.run(request: request([("x-debug", "1"), ("x-env", "dev")]))
        XCTAssertTrue(result.succeeded, "\(result.errors)")
        XCTAssertEqual(result.upstreamRequest?.head.headers["x-env"], ["prod"])
        XCTAssertNil(result.upstreamRequest?.head.headers.first(name: "x-debug"))
        XCTAssertEqual(result.response?.head.headers.first(name: "x-served-by"), "meshd")
    }

    func testApiKeyRejectsAndLimits() throws {
        let key = "k-\(UInt64.random(in: 0...UInt64.max))"
        let r = try plugin("api-key", .object(["keys": .object([
            key: .object(["client": .string("alice"), "requests": .number(2), "windowSeconds": .number(3600)]),
        ])]))
        let missing = try r.run(request: request())
        XCTAssertEqual(missing.response?.head.status, 401)
        XCTAssertEqual(missing.response.map { String(decoding: $0.body, as: UTF8.self) }, #"{"error":"missing or invalid api key"}"#)
        let runs = try (0..<3).map { _ in try r.run(request: request([("x-api-key", key)])) }
        XCTAssertEqual(runs.map { $0.response?.head.status }, [200, 200, 429])
        XCTAssertEqual(runs[0].upstreamRequest?.head.headers.first(name: "x-api-client"), "alice")
        XCTAssertNil(runs[0].upstreamRequest?.head.headers.first(name: "x-api-key"))
        XCTAssertEqual(runs[1].response?.head.headers.first(name: "x-ratelimit-remaining"), "0")
        XCTAssertNotNil(runs[2].response?.head.headers.first(name: "retry-after"))
    }

    func testAccessPluginsFailClosedOnBadConfig() throws {
        for name in ["api-key", "jwt-claims"] {
            let result = try plugin(name, .object([:])).run(request: request())
            XCTAssertEqual(result.response?.head.status, 500, name)
            XCTAssertNil(result.upstreamRequest, name)
            XCTAssertEqual(result.logs.first?.level, .error, name)
            XCTAssertTrue(result.errors.isEmpty, "\(name): handled, not a script error")
        }
    }

    func testJsonRedact() throws {
        let r = try plugin("json-redact", .object(["fields": .array([.string("password")])]))
        var resp = PluginTestResponse()
        let json = #"{"a": {"password": "x"}, "b": [1]}"#
        resp.headers = [("content-type", "application/json"), ("content-length", String(json.utf8.count))]
        resp.body = [json]
        let result = try r.run(request: request(), response: resp)
        let body = try XCTUnwrap(result.response.map { String(decoding: $0.body, as: UTF8.self) })
        XCTAssertTrue(body.contains(#""password":"[redacted]""#), body)
        XCTAssertEqual(result.response?.head.headers.first(name: "content-length"), String(body.utf8.count))
        resp.body = ["not json"]
        resp.headers = [("content-type", "application/json")]
        XCTAssertEqual(try r.run(request: request(), response: resp).response.map { String(decoding: $0.body, as: UTF8.self) },
                       "not json")
    }

    func testCanaryCookieAndLogSamplerAndJwt() throws {
        let canary = try plugin("canary-cookie", .object([:])).run(request: request([("cookie", "a=1; canary=always")]))
        XCTAssertEqual(canary.upstreamRequest?.head.headers.first(name: "x-canary"), "1")
        XCTAssertEqual(canary.routeCacheClears, 1)

        let sampled = try plugin("log-sampler", .object(["rate": .number(1)])).run(request: request())
        XCTAssertEqual(sampled.logs.count, 1)
        XCTAssertTrue(sampled.logs[0].message.hasPrefix("sampled request method=GET path=/ status=200 duration_ms="),
                      sampled.logs[0].message)

        let jwt = try plugin("jwt-claims", .object(["publicKey": .string("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")]))
        let missing = try jwt.run(request: request())
        XCTAssertEqual(missing.response?.head.status, 401)
        let bad = try jwt.run(request: request([("authorization", "Bearer a.b.c")]))
        XCTAssertEqual(bad.response.map { String(decoding: $0.body, as: UTF8.self) }, #"{"error":"malformed token"}"#)
    }
}
