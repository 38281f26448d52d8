@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOCore
import NIOEmbedded
import Transport
import XCTest

/// A CUSTOM policy whose authorizer is a Lua plugin (`meshdLuaPlugin`): its `envoy_on_request`
/// runs in the RBAC filter for the requests the policy matches; `respond()` denies, returning
/// allows, a failure follows `failOpen` / `statusOnError`.
final class RBACLuaAuthorizerTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    static let plugin = """
    function envoy_on_request(handle)
      local h = handle:headers()
      if h:get("x-token") == "good" then
        h:add("x-user", "alice")
        h:remove("x-token")
      elseif h:get("x-token") == "boom" then
        error("authorizer broke")
      elseif h:get("x-token") == "spin" then
        while true do end
      elseif h:get("x-token") == "body" then
        if handle:body():getBytes(0, 4) ~= "open" then
          handle:respond({[":status"] = "401"}, "bad body")
        end
      else
        handle:respond({[":status"] = "403", ["x-why"] = "no token"}, "denied by lua")
      end
    end
    """

    func harness(failOpen: Bool = false, statusOnError: Int? = nil, extraPolicies: String = "") throws -> ChainHarness {
        let code = Self.plugin.replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        let status = statusOnError.map { ", statusOnError: \($0)" } ?? ""
        let snapshot = try buildSnapshot("""
        listeners: [{name: main, address: 127.0.0.1, port: 8080, routeConfig: rc, httpFilters: [
          {name: meshd.rbac, config: {
            providers: {lua-authz: {failOpen: \(failOpen)\(status), luaPlugin: {name: default.authz, inlineCode: "\(code)", limits: {instructions: 100000}}}},
            policies: [{name: default.ext, action: CUSTOM, provider: lua-authz, rules: [{to: [{operation: {paths: [/api*]}}]}]}\(extraPolicies)]}}]}]
        clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 9}]}]
        routeConfigs: [{name: rc, virtualHosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}]
        """)
        return try ChainHarness(eventLoop: loop, factories: snapshot.filterChains["main"]!, bootstrap: snapshot.bootstrap)
    }

    /// Runs of the plugin (counted on the loop's next tick).
    func executions(_ s: ChainHarness) -> Int {
        loop.run()
        return s.counters.values["meshd_lua_executions_total{plugin=\"default.authz\"}"] ?? 0
    }

    func testRequestsTheRulesDoNotMatchNeverRunThePlugin() throws {
        let s = try harness()
        s.sendRequest(path: "/public")
        XCTAssertNotNil(s.upstreamHead)
        XCTAssertEqual(executions(s), 0)
        XCTAssertEqual(s.counters.values.keys.filter { $0.hasPrefix("meshd_ext_authz_total") }, [])
    }

    func testReturningAllowsWithTheHeaderEditsAndTheDenyPoliciesStillDecide() throws {
        let s = try harness()
        s.sendRequest(path: "/api/a", headers: [("x-token", "good")])
        XCTAssertNil(s.localReply)
        XCTAssertEqual(s.upstream("x-user"), "alice")
        XCTAssertNil(s.upstream("x-token"))
        XCTAssertEqual(executions(s), 1)
        XCTAssertEqual(s.counters.values["meshd_ext_authz_total{result=\"ok\"}"], 1)

        let denied = try harness(extraPolicies: ", {name: default.d, action: DENY, rules: [{to: [{operation: {paths: [/api/admin]}}]}]}")
        denied.sendRequest(path: "/api/admin", headers: [("x-token", "good")])
        XCTAssertEqual(denied.localReply?.status, 403)
        XCTAssertEqual(denied.localReply?.body, "RBAC: access denied")
        XCTAssertNil(denied.upstreamHead)
    }

    func testRespondDeniesWithThePluginsAnswer() throws {
        let s = try harness()
        s.sendRequest(path: "/api/a")
        XCTAssertNil(s.upstreamHead)
        XCTAssertEqual(s.localReply?.status, 403)
        XCTAssertEqual(s.localReply?.body, "denied by lua")
        XCTAssertEqual(s.localReply?.headers.first(name: "x-why"), "no token")
        XCTAssertEqual(s.streamInfo.responseFlags, [.unauthorizedExternalService])
        XCTAssertEqual(s.counters.values["meshd_ext_authz_total{result=\"denied\"}"], 1)
    }

    /// Envoy's ext_authz on a failed check: `statusOnError` (default 403), empty body, UAEX;
    /// with `failOpen` the request goes on as it came.
    func testAnErrorOrALimitFailsClosedUnlessFailOpen() throws {
        for token in ["boom", "spin"] {
            let s = try harness()
            s.sendRequest(path: "/api/a", headers: [("x-token", token)])
            XCTAssertNil(s.upstreamHead, token)
            XCTAssertEqual(s.localReply?.status, 403, token)
            XCTAssertEqual(s.localReply?.body, "", token)
            XCTAssertEqual(s.streamInfo.responseFlags, [.unauthorizedExternalService], token)
            XCTAssertEqual(s.counters.values["meshd_ext_authz_total{result=\"error\"}"], 1, token)
            XCTAssertEqual(s.counters.values["meshd_lua_errors_total{plugin=\"default.authz\"}"], 1, token)
        }
        let status = try harness(statusOnError: 503)
        status.sendRequest(path: "/api/a", headers: [("x-token", "boom")])
        XCTAssertEqual(status.localReply?.status, 503)

        let open = try harness(failOpen: true)
        open.sendRequest(path: "/api/a", headers: [("x-token", "boom")])
        XCTAssertNil(open.localReply)
        XCTAssertEqual(open.upstream("x-token"), "boom", "the request goes on as it came")
        XCTAssertEqual(open.counters.values["meshd_ext_authz_total{result=\"failure_mode_allowed\"}"], 1)
    }

    /// A plugin that reads the body decides once it has it: the request waits meanwhile.
    func testAPluginMayDecideOnTheBody() throws {
        let s = try harness()
        s.sendRequestHeaders(path: "/api/a", headers: [("x-token", "body")])
        XCTAssertNil(s.upstreamHead)
        s.sendRequestData("open sesame", end: true)
        XCTAssertNil(s.localReply)
        XCTAssertEqual(s.upstreamBodyString, "open sesame")
        XCTAssertEqual(s.counters.values["meshd_ext_authz_total{result=\"ok\"}"], 1)

        let closed = try harness()
        closed.sendRequestHeaders(path: "/api/a", headers: [("x-token", "body")])
        closed.sendRequestData("shut", end: true)
        XCTAssertNil(closed.upstreamHead)
        XCTAssertEqual(closed.localReply?.status, 401)
        XCTAssertEqual(closed.localReply?.body, "bad body")
    }

    func testConfigErrorsNameTheField() throws {
        XCTAssertThrowsError(try RBACConfig(.object(["providers": .object(["p": .object(["luaPlugin": .object([:])])])]))) { e in
            XCTAssertEqual((e as? ConfigError)?.path, "providers.p.luaPlugin.inlineCode")
        }
        XCTAssertThrowsError(try RBACConfig(.object(["providers": .object(["p": .object([
            "luaPlugin": .object(["inlineCode": .string("local a = 1")]), "statusOnError": .number(7)])])]))) { e in
            XCTAssertEqual((e as? ConfigError)?.path, "providers.p.statusOnError")
        }
    }
}
