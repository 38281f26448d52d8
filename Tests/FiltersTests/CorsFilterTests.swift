@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOEmbedded
import Transport
import XCTest

final class CorsFilterTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private static let policy = """
    {allowOrigins: [{exact: "https://app.example"}, {prefix: "https://dev-"}, {safeRegex: "https://[a-z]+\\\\.partner\\\\.example"}],
     allowMethods: [GET, POST], allowHeaders: [x-custom, content-type], exposeHeaders: [x-trace],
     maxAgeSeconds: 600, allowCredentials: true}
    """

    private func harness(_ policy: String = CorsFilterTests.policy, listener: String? = nil) throws -> ChainHarness {
        let yaml = """
        listeners:
          - {name: main, address: 127.0.0.1, port: 8080, routeConfig: rc, httpFilters: [{name: meshd.cors\(listener.map { ", config: " + $0 } ?? "")}]}
        clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 9}]}]
        routeConfigs:
          - name: rc
            virtualHosts:
              - name: api
                domains: ["*"]
                routes:
                  - {name: api, match: {prefix: /api}, route: {cluster: c}, perFilterConfig: {meshd.cors: \(policy)}}
                  - {name: plain, match: {prefix: /}, route: {cluster: c}}
        """
        let snapshot = try buildSnapshot(yaml)
        let s = try ChainHarness(eventLoop: loop, factories: snapshot.filterChains["main"]!, bootstrap: snapshot.bootstrap)
        s.route = s.snapshot.routeTables["rc"]!.select(authority: "a", path: "/api", method: "GET", headers: [:])
        return s
    }

    private func preflight(_ s: ChainHarness, origin: String, headers more: [(String, String)] = []) {
        s.sendRequest(method: "OPTIONS", path: "/api", headers: [("origin", origin), ("access-control-request-method", "POST")] + more)
    }

    func testPreflightFromAnAllowedOriginIsAnsweredByTheProxy() throws {
        for origin in ["https://app.example", "https://dev-42.example", "https://blue.partner.example"] {
            let s = try harness()
            preflight(s, origin: origin, headers: [("access-control-request-headers", "x-custom")])
            XCTAssertNil(s.upstreamHead, origin)
            XCTAssertEqual(s.localReply?.status, 200, origin)
            XCTAssertEqual(s.client("access-control-allow-origin"), origin)
            XCTAssertEqual(s.client("access-control-allow-methods"), "GET,POST")
            XCTAssertEqual(s.client("access-control-allow-headers"), "x-custom,content-type")
            XCTAssertEqual(s.client("access-control-max-age"), "600")
            XCTAssertEqual(s.client("access-control-allow-credentials"), "true")
            XCTAssertNil(s.client("access-control-expose-headers"), "expose-headers belongs to actual responses")
            XCTAssertEqual(s.counters.values[CorsFilter.originValidKey], 1)
        }
    }

    func testPreflightFromADisallowedOriginGetsNoCorsHeaders() throws {
        // Envoy's default (Istio's UNSPECIFIED and FORWARD): the preflight goes to the upstream
        // and its answer gets nothing added.
        let s = try harness()
        preflight(s, origin: "https://evil.example")
        XCTAssertNotNil(s.upstreamHead)
        XCTAssertNil(s.localReply)
        s.sendResponse(status: 204)
        XCTAssertNil(s.client("access-control-allow-origin"))
        XCTAssertNil(s.client("access-control-allow-credentials"))
        XCTAssertEqual(s.counters.values[CorsFilter.originInvalidKey], 1)
        // A regex matches the whole origin, a prefix only at the start.
        for origin in ["https://blue.partner.example.evil", "http://dev-1.example", "https://app.example.evil"] {
            let other = try harness()
            other.sendRequest(path: "/api", headers: [("origin", origin)])
            other.sendResponse()
            XCTAssertNil(other.client("access-control-allow-origin"), origin)
        }
    }

    func testUnmatchedPreflightsAnsweredHereWhenNotForwarded() throws {
        let s = try harness("{allowOrigins: [{exact: \"https://app.example\"}], allowMethods: [GET], forwardNotMatchingPreflights: false}")
        preflight(s, origin: "https://evil.example")
        XCTAssertNil(s.upstreamHead)
        XCTAssertEqual(s.localReply?.status, 200)
        XCTAssertNil(s.client("access-control-allow-origin"), "the origin is not allowed")
    }

    func testActualRequestFromAnAllowedOriginGetsTheResponseHeaders() throws {
        let s = try harness()
        s.sendRequest(method: "POST", path: "/api", headers: [("origin", "https://app.example")])
        XCTAssertNotNil(s.upstreamHead, "actual requests go to the upstream")
        s.sendResponse(headers: [("access-control-allow-origin", "*")])
        XCTAssertEqual(s.clientHead?.headers["access-control-allow-origin"], ["https://app.example"], "replaces the upstream's")
        XCTAssertEqual(s.client("access-control-expose-headers"), "x-trace")
        XCTAssertEqual(s.client("access-control-allow-credentials"), "true")
        XCTAssertNil(s.client("access-control-allow-methods"))
        XCTAssertNil(s.client("vary"), "Envoy adds no vary header")
    }

    func testNothingWithoutAnOriginOrAPolicy() throws {
        let s = try harness()
        s.sendRequest(method: "OPTIONS", path: "/api", headers: [("access-control-request-method", "POST")])
        XCTAssertNotNil(s.upstreamHead, "no origin: not a CORS request")
        s.sendResponse()
        XCTAssertNil(s.client("access-control-allow-origin"))

        let plain = try harness()
        plain.route = plain.snapshot.routeTables["rc"]!.select(authority: "a", path: "/", method: "GET", headers: [:])
        preflight(plain, origin: "https://app.example")
        XCTAssertNotNil(plain.upstreamHead, "a route without a policy: the preflight goes upstream")
    }

    func testTheListenersPolicyAppliesToRoutesWithoutOneAndNeedsARoute() throws {
        let listener = "{allowOrigins: [{exact: \"https://listener.example\"}]}"
        let plain = try harness(listener: listener)
        plain.route = plain.snapshot.routeTables["rc"]!.select(authority: "a", path: "/", method: "GET", headers: [:])
        preflight(plain, origin: "https://listener.example")
        XCTAssertEqual(plain.localReply?.status, 200)
        XCTAssertEqual(plain.client("access-control-allow-origin"), "https://listener.example")

        let api = try harness(listener: listener)
        preflight(api, origin: "https://listener.example")
        XCTAssertNotNil(api.upstreamHead, "the route's own policy replaces the listener's")

        let noRoute = try harness(listener: listener)
        noRoute.route = nil
        preflight(noRoute, origin: "https://listener.example")
        XCTAssertNil(noRoute.localReply, "no route: no CORS, as Envoy")
        XCTAssertNotNil(noRoute.upstreamHead)
    }

    func testWildcardsEchoWhatThePreflightAsksFor() throws {
        let s = try harness("{allowOrigins: [{prefix: \"*\"}], allowMethods: [\"*\"], allowHeaders: [\"*\"]}")
        preflight(s, origin: "https://any.example", headers: [("access-control-request-headers", "x-a,x-b")])
        XCTAssertEqual(s.client("access-control-allow-origin"), "https://any.example", "the origin, never *")
        XCTAssertEqual(s.client("access-control-allow-methods"), "POST")
        XCTAssertEqual(s.client("access-control-allow-headers"), "x-a,x-b")
        XCTAssertNil(s.client("access-control-allow-credentials"))
        XCTAssertNil(s.client("access-control-max-age"))
    }

    func testBadConfigNamesTheFieldPath() {
        let cases = [
            ("{allowOrigins: [{glob: \"x\"}]}", "allowOrigins[0]"),
            ("{allowOrigins: [{safeRegex: \"(\"}]}", "allowOrigins[0].safeRegex"),
            ("{allowMethods: GET}", "allowMethods"),
            ("{maxAgeSeconds: -1}", "maxAgeSeconds"),
            ("{allowCredentials: yes please}", "allowCredentials"),
            ("{allowOrigin: []}", "allowOrigin"),
        ]
        for (policy, path) in cases {
            XCTAssertThrowsError(try harness(policy), policy) {
                XCTAssertEqual(($0 as? ConfigError)?.path,
                               "routeConfigs[0].virtualHosts[0].routes[0].perFilterConfig.meshd.cors." + path, policy)
            }
        }
    }
}
