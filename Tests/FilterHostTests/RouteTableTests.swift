@testable import FilterHost
import MeshAPI
import NIOHTTP1
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

final class RouteTableTests: XCTestCase {
    private func table(_ yaml: String) throws -> ProxySnapshot { try buildSnapshot(yaml) }

    private let config = """
    listeners: [{name: l, address: 127.0.0.1, port: 1, routeConfig: rc}]
    clusters: [{name: a, endpoints: [{address: 127.0.0.1, port: 1}]}, {name: b, endpoints: [{address: 127.0.0.1, port: 2}]}]
    routeConfigs:
      - name: rc
        virtualHosts:
          - {name: exact, domains: [api.example.com], routes: [
              {name: hdr, match: {prefix: /, headers: [{name: x-user, exact: jason}]}, route: {cluster: b}},
              {name: absent, match: {prefix: /nohdr, headers: [{name: x-user, present: false}]}, route: {cluster: b}},
              {name: re, match: {safeRegex: "/v[0-9]+/items"}, route: {cluster: b}},
              {name: post, match: {prefix: /, methods: [POST]}, route: {cluster: b}},
              {name: rest, match: {prefix: /}, route: {cluster: a}}]}
          - {name: suffix, domains: ["*.example.com"], routes: [{name: s, match: {prefix: /}, route: {cluster: a}}]}
          - {name: prefix, domains: ["example.*"], routes: [{name: p, match: {prefix: /}, route: {cluster: a}}]}
          - {name: any, domains: ["*"], routes: [{name: any, match: {path: /only}, route: {cluster: a}}]}
    """

    private func select(_ s: ProxySnapshot, _ authority: String, _ path: String, method: String = "GET",
                        headers: HTTPHeaders = [:]) -> String? {
        s.routeTables["rc"]!.select(authority: authority, path: path, method: method, headers: headers).map {
            "\($0.virtualHost)/\($0.name)"
        }
    }

    func testDomainPrecedenceFollowsEnvoy() throws {
        let s = try table(config)
        XCTAssertEqual(select(s, "api.example.com:8080", "/x"), "exact/rest")
        XCTAssertEqual(select(s, "WWW.example.com", "/x"), "suffix/s")
        XCTAssertEqual(select(s, "example.org", "/x"), "prefix/p")
        XCTAssertEqual(select(s, "other", "/only"), "any/any")
        XCTAssertNil(select(s, "other", "/only/more"))
    }

    func testMatchesHeadersRegexMethodsAndIgnoresQuery() throws {
        let s = try table(config)
        XCTAssertEqual(select(s, "api.example.com", "/x", headers: ["X-User": "jason"]), "exact/hdr")
        XCTAssertEqual(select(s, "api.example.com", "/nohdr"), "exact/absent")
        XCTAssertEqual(select(s, "api.example.com", "/nohdr", headers: ["x-user": "x"]), "exact/rest")
        XCTAssertEqual(select(s, "api.example.com", "/v2/items?page=3"), "exact/re")
        XCTAssertEqual(select(s, "api.example.com", "/v2/items/1"), "exact/rest")
        XCTAssertEqual(select(s, "api.example.com", "/x", method: "POST"), "exact/post")
    }

    func testRegexesAreRE2WithFullMatchSemantics() throws {
        let s = try table(config
            .replacingOccurrences(of: "/v[0-9]+/items", with: "/(a+)+b")
            .replacingOccurrences(of: "{name: x-user, exact: jason}", with: "{name: x-user, safeRegex: \"jason|ja\"}"))
        XCTAssertEqual(select(s, "api.example.com", "/aaab"), "exact/re")
        // A full match: a pattern that only matches a part of the path does not select the route.
        XCTAssertEqual(select(s, "api.example.com", "/aaab/x"), "exact/rest")
        // The classic catastrophic case answers at once.
        XCTAssertEqual(select(s, "api.example.com", "/" + String(repeating: "a", count: 100_000) + "c"), "exact/rest")
        XCTAssertEqual(select(s, "api.example.com", "/x", headers: ["x-user": "ja"]), "exact/hdr")
        XCTAssertEqual(select(s, "api.example.com", "/x", headers: ["x-user": "jasonx"]), "exact/rest")
    }

    func testInvalidConfigsNameTheFieldPath() {
        func error(_ yaml: String) -> String {
            do { _ = try table(yaml); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(config.replacingOccurrences(of: "/v[0-9]+/items", with: "(["))
            .contains("routeConfigs[0].virtualHosts[0].routes[2].match.safeRegex: invalid regex"))
        let lookahead = error(config.replacingOccurrences(of: "/v[0-9]+/items", with: "(?!/admin)/.*"))
        XCTAssertTrue(lookahead.contains("routes[2].match.safeRegex: invalid regex \"(?!/admin)/.*\": invalid perl operator: (?!"
            + " (lookahead is not supported"), lookahead)
        let big = error(config.replacingOccurrences(of: "/v[0-9]+/items", with: "/v[0-9]{1,50}/items"))
        XCTAssertTrue(big.contains("routeConfigs[0].virtualHosts[0].routes[2].match.safeRegex: regex \"/v[0-9]{1,50}/items\""
            + " is too complex: RE2 program size"), big)
        XCTAssertTrue(big.contains("exceeds the maximum program size of 100"), big)
        let header = error(config.replacingOccurrences(of: "{name: x-user, exact: jason}", with: "{name: x-user, safeRegex: \"(j)\\\\1\"}"))
        XCTAssertTrue(header.contains("routes[0].match.headers[0].safeRegex: invalid regex"), header)
        XCTAssertTrue(header.contains("backreferences are not supported"), header)
        XCTAssertTrue(error(config.replacingOccurrences(of: "{name: rest, match: {prefix: /}, route: {cluster: a}}", with: "{name: rest, match: {prefix: /}, route: {cluster: zz}}"))
            .contains("unknown cluster 'zz'"))
        XCTAssertTrue(error(config.replacingOccurrences(of: "routeConfig: rc", with: "routeConfig: nope"))
            .contains("listeners[0].routeConfig: unknown route config 'nope'"))
        XCTAssertTrue(error("listeners: [{name: l, address: 127.0.0.1, port: x, routeConfig: rc}]")
            .contains("listeners[0].port: wrong type"))
        let unclosed = error("listeners: [unclosed")
        XCTAssertTrue(unclosed.contains("invalid YAML"), unclosed)
    }
}
