@testable import FilterHost
import MeshAPI
import NIOHTTP1
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

/// Query parameter matching, pseudo-header matchers, port-qualified domains, redirects,
/// per-route header changes and whole-path rewrites.
final class RouteFeaturesTests: XCTestCase {
    private func snapshot(_ yaml: String) throws -> ProxySnapshot { try buildSnapshot(yaml) }

    private let config = """
    listeners: [{name: l, address: 127.0.0.1, port: 1, routeConfig: rc}]
    clusters: [{name: a, endpoints: [{address: 127.0.0.1, port: 1}]}, {name: b, endpoints: [{address: 127.0.0.1, port: 2}]}]
    routeConfigs:
      - name: rc
        virtualHosts:
          - {name: port9080, domains: ["reviews:9080"], routes: [{name: p, match: {prefix: /}, route: {cluster: b}}]}
          - {name: plain, domains: [reviews], routes: [
              {name: q-exact, match: {prefix: /, queryParams: [{name: user, exact: "jason lee"}]}, route: {cluster: b}},
              {name: q-prefix, match: {prefix: /, queryParams: [{name: v, prefix: "2."}]}, route: {cluster: b}},
              {name: q-regex, match: {prefix: /, queryParams: [{name: id, safeRegex: "[0-9]+"}]}, route: {cluster: b}},
              {name: q-present, match: {prefix: /, queryParams: [{name: debug, present: true}, {name: quiet, present: false}]}, route: {cluster: b}},
              {name: authority, match: {prefix: /, headers: [{name: ":authority", exact: "reviews:8000"}]}, route: {cluster: b}},
              {name: method, match: {prefix: /, headers: [{name: ":method", safeRegex: "PUT|PATCH"}]}, route: {cluster: b}},
              {name: moved, match: {path: /old}, redirect: {uri: /new, responseCode: 302}},
              {name: rest, match: {prefix: /}, route: {cluster: a}}]}
    """

    private func select(_ s: ProxySnapshot, _ authority: String, _ path: String, method: String = "GET") -> String? {
        s.routeTables["rc"]!.select(authority: authority, path: path, method: method, headers: [:]).map {
            "\($0.virtualHost)/\($0.name)"
        }
    }

    func testQueryParameterMatchingDecodesValues() throws {
        let s = try snapshot(config)
        XCTAssertEqual(select(s, "reviews", "/x?user=jason%20lee"), "plain/q-exact")
        XCTAssertEqual(select(s, "reviews", "/x?user=jason"), "plain/rest")
        XCTAssertEqual(select(s, "reviews", "/x?a=1&v=2.1"), "plain/q-prefix")
        XCTAssertEqual(select(s, "reviews", "/x?id=42"), "plain/q-regex")
        XCTAssertEqual(select(s, "reviews", "/x?id=4x"), "plain/rest")
        XCTAssertEqual(select(s, "reviews", "/x?debug"), "plain/q-present")
        XCTAssertEqual(select(s, "reviews", "/x?debug=1&quiet=1"), "plain/rest")
        // The first occurrence of a parameter counts.
        XCTAssertEqual(select(s, "reviews", "/x?id=1&id=x"), "plain/q-regex")
        XCTAssertEqual(select(s, "reviews", "/x?id=x&id=1"), "plain/rest")
    }

    func testPseudoHeaderMatchersAndPortQualifiedDomains() throws {
        let s = try snapshot(config)
        XCTAssertEqual(select(s, "reviews:9080", "/x"), "port9080/p")
        XCTAssertEqual(select(s, "REVIEWS:9080", "/x"), "port9080/p")
        XCTAssertEqual(select(s, "reviews", "/x"), "plain/rest")
        XCTAssertEqual(select(s, "reviews:8000", "/x"), "plain/authority")
        XCTAssertEqual(select(s, "reviews", "/x", method: "PATCH"), "plain/method")
        XCTAssertEqual(select(s, "reviews", "/old?a=1"), "plain/moved")
    }

    func testRouteActionsAreExclusiveAndQueryRegexesCompile() {
        func error(_ yaml: String) -> String {
            do { _ = try snapshot(yaml); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(config.replacingOccurrences(of: "redirect: {uri: /new, responseCode: 302}",
                                                       with: "redirect: {uri: /new}, route: {cluster: a}"))
            .contains("routes[6]: a route needs exactly one of route, redirect, directResponse"))
        XCTAssertTrue(error(config.replacingOccurrences(of: "safeRegex: \"[0-9]+\"", with: "safeRegex: \"[0-9\""))
            .contains("routes[2].match.queryParams[0].safeRegex: invalid regex"))
    }

    func testRedirectLocation() {
        func head(_ authority: String, _ path: String, scheme: String = "http") -> RequestHead {
            RequestHead(method: "GET", scheme: scheme, authority: authority, path: path, headers: [:], version: .http11)
        }
        XCTAssertEqual(RedirectAction(uri: "/new").location(for: head("a.example:8080", "/old?x=1")),
                       "http://a.example:8080/new?x=1")
        XCTAssertEqual(RedirectAction(uri: "/new?y=2").location(for: head("a.example", "/old?x=1")), "http://a.example/new?y=2")
        XCTAssertEqual(RedirectAction(scheme: "https").location(for: head("a.example:8080", "/p?q")), "https://a.example/p?q")
        XCTAssertEqual(RedirectAction(scheme: "https", port: 8443).location(for: head("a.example:80", "/")), "https://a.example:8443/")
        XCTAssertEqual(RedirectAction(scheme: "https", port: 443).location(for: head("a.example", "/")), "https://a.example/")
        XCTAssertEqual(RedirectAction(authority: "b.example:9000").location(for: head("a.example:8080", "/p")), "http://b.example:9000/p")
        XCTAssertEqual(RedirectAction(authority: "b.example", port: 81).location(for: head("a.example", "/p", scheme: "https")),
                       "https://b.example:81/p")
        XCTAssertEqual(RedirectAction(port: 9090).location(for: head("[::1]:8080", "/")), "http://[::1]:9090/")
    }

    /// Envoy's regex_rewrite (Istio's uriRegexRewrite): every match in the path, never the query.
    func testRegexRewriteChangesThePathOnlyAndIsCheckedWhenCompiled() throws {
        let action = RouteAction(cluster: "a", regexRewrite: RegexRewrite(pattern: "^/service/([^/]+)(/.*)$", substitution: #"\2/instance/\1"#))
        let route = Route(match: RouteMatch(prefix: "/"), route: action)
        let compiled = try CompiledRoute(route, at: "r")
        var h = RequestHead(method: "GET", scheme: "http", authority: "a", path: "/service/foo/v1/api?x=/service/y/z", headers: [:], version: .http11)
        RouterFilter.rewrite(&h, action: action, matchedPrefix: "/", regex: compiled.rewriteRegex)
        XCTAssertEqual(h.path, "/v1/api/instance/foo?x=/service/y/z")
        XCTAssertEqual(h.headers.first(name: "x-envoy-original-path"), "/service/foo/v1/api?x=/service/y/z")
        var global = RequestHead(method: "GET", scheme: "http", authority: "a", path: "/aaa/b", headers: [:], version: .http11)
        let all = RouteAction(cluster: "a", regexRewrite: RegexRewrite(pattern: "a", substitution: "x"))
        RouterFilter.rewrite(&global, action: all, matchedPrefix: nil, regex: try CompiledRoute(Route(match: RouteMatch(prefix: "/"), route: all), at: "r").rewriteRegex)
        XCTAssertEqual(global.path, "/xxx/b", "every match is replaced, as RE2::GlobalReplace")
        let bad = Route(match: RouteMatch(prefix: "/"), route: RouteAction(cluster: "a", regexRewrite: RegexRewrite(pattern: "(a)", substitution: #"\2"#)))
        XCTAssertThrowsError(try CompiledRoute(bad, at: "r")) { error in
            XCTAssertTrue("\(error)".contains("r.route.regexRewrite.substitution"), "\(error)")
        }
    }

    func testPathRewriteKeepsTheQueryAndHeaderMutations() {
        var h = RequestHead(method: "GET", scheme: "http", authority: "a", path: "/item/42?full=1", headers: [:], version: .http11)
        RouterFilter.rewrite(&h, action: RouteAction(cluster: "a", pathRewrite: "/item"), matchedPrefix: nil)
        XCTAssertEqual(h.path, "/item?full=1")
        XCTAssertEqual(h.headers.first(name: "x-envoy-original-path"), "/item/42?full=1")
        var headers: HTTPHeaders = ["x-debug": "1", "x-route": "old", "x-multi": "a"]
        HeaderMutation(set: ["x-route": "api"], add: ["x-multi": "b"], remove: ["x-debug"]).apply(to: &headers)
        XCTAssertEqual(headers[canonicalForm: "x-route"], ["api"])
        XCTAssertEqual(headers[canonicalForm: "x-multi"], ["a", "b"])
        XCTAssertFalse(headers.contains(name: "x-debug"))
        let route = Route(match: RouteMatch(prefix: "/"), directResponse: DirectResponse(status: 200),
                          headers: HeaderOperations(response: HeaderMutation(set: ["x-served-by": "meshd"])))
        XCTAssertEqual(route.localReplyHeaders()[canonicalForm: "x-served-by"], ["meshd"])
    }
}
