@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOEmbedded
import Transport
import XCTest

final class HeaderMutationFilterTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private let yaml = """
    listeners:
      - {name: main, address: 127.0.0.1, port: 8080, routeConfig: rc,
         httpFilters: [{name: meshd.header_mutation, config: {request: {set: {x-team: core}, remove: [x-drop]},
                                                              response: {add: {x-via: meshd}}}}]}
    clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 9}]}]
    routeConfigs:
      - name: rc
        virtualHosts:
          - name: api
            domains: [api.local]
            perFilterConfig: {meshd.header_mutation: {request: {set: {x-host-level: "1"}}}}
            routes:
              - name: special
                match: {prefix: /special}
                route: {cluster: c}
                perFilterConfig: {meshd.header_mutation: {request: {set: {x-route: special}}, response: {remove: [server]}}}
              - {name: plain, match: {prefix: /}, route: {cluster: c}}
          - {name: other, domains: ["*"], routes: [{name: any, match: {prefix: /}, route: {cluster: c}}]}
    """

    private func harness(authority: String, path: String) throws -> ChainHarness {
        let snapshot = try buildSnapshot(yaml)
        let factories = snapshot.filterChains["main"]!
        let s = try ChainHarness(eventLoop: loop, factories: factories, bootstrap: snapshot.bootstrap)
        s.route = s.snapshot.routeTables["rc"]!.select(authority: authority, path: path, method: "GET", headers: [:])
        return s
    }

    func testListenerLevelChangesApplyToEveryRoute() throws {
        let s = try harness(authority: "other.local", path: "/")
        s.sendRequest(headers: [("x-drop", "1"), ("x-team", "old")])
        XCTAssertEqual(s.upstream("x-team"), "core")
        XCTAssertNil(s.upstream("x-drop"))
        XCTAssertNil(s.upstream("x-route"))
        XCTAssertNil(s.upstream("x-host-level"))
        s.sendResponse(headers: [("server", "app")])
        XCTAssertEqual(s.client("x-via"), "meshd")
        XCTAssertEqual(s.client("server"), "app")
    }

    func testTheMostSpecificPerRouteConfigAppliesAfterTheListenersOwn() throws {
        let special = try harness(authority: "api.local", path: "/special/x")
        special.sendRequest()
        XCTAssertEqual(special.upstream("x-route"), "special")
        XCTAssertNil(special.upstream("x-host-level"), "the route's own entry wins over its virtual host's")
        XCTAssertEqual(special.upstream("x-team"), "core")
        special.sendResponse(headers: [("server", "app")])
        XCTAssertNil(special.client("server"))

        let plain = try harness(authority: "api.local", path: "/other")
        plain.sendRequest()
        XCTAssertEqual(plain.upstream("x-host-level"), "1", "a route without its own entry gets its virtual host's")
        XCTAssertNil(plain.upstream("x-route"))
    }

    func testBadConfigNamesTheFieldPath() {
        XCTAssertThrowsError(try buildSnapshot(yaml.replacingOccurrences(of: "remove: [x-drop]", with: "remove: x-drop"))) {
            XCTAssertEqual(($0 as? ConfigError)?.path, "listeners[0].httpFilters[0].config.request.remove")
        }
        XCTAssertThrowsError(try buildSnapshot(yaml.replacingOccurrences(of: "{request: {set: {x-route: special}}",
                                                                           with: "{requets: {set: {x-route: special}}"))) {
            XCTAssertEqual(($0 as? ConfigError)?.path,
                           "routeConfigs[0].virtualHosts[0].routes[0].perFilterConfig.meshd.header_mutation.requets")
        }
        XCTAssertThrowsError(try buildSnapshot(yaml.replacingOccurrences(of: "x-host-level: \"1\"", with: "x-host-level: [1]"))) {
            XCTAssertEqual(($0 as? ConfigError)?.path,
                           "routeConfigs[0].virtualHosts[0].perFilterConfig.meshd.header_mutation.request.set.x-host-level")
        }
    }
}
