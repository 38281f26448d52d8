@testable import ControlPlane
import FilterHost
import Filters
import MeshAPI
import XCTest

/// VirtualService `fault` and `corsPolicy` become per-route configs of the native
/// `meshd.fault` / `meshd.cors` filters, placed in the chains of the listeners that use them.
final class FaultCorsTranslationTests: XCTestCase {
    private let productpage = ProxyIdentity.sidecar(name: "productpage-v1", namespace: "default",
                                                    labels: ["app": "productpage", "version": "v1"],
                                                    outboundPort: 15001, inboundPort: 15006, appPort: 9080)

    private func ratingsRoutes(_ samples: [String], extra: String? = nil) throws -> (Translation, [Route]) {
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml"] + samples, extra: extra)
        let t = Translator(store: store).translate(for: productpage)
        _ = assertSnapshotBuilds(t.bootstrap)
        let host = samples.contains("fault-injection-details-v1.yaml") ? "details" : "ratings"
        return (t, try XCTUnwrap(t.bootstrap.routeConfig("outbound")?.virtualHost(domain: host)).routes)
    }

    /// The listener's route filters: every listener starts with `istio.stats`, left out here.
    private func listenerFilters(_ t: Translation, _ name: String = "outbound") -> [String]? {
        let names = t.bootstrap.listeners.first { $0.name == name }?.httpFilters?.map(\.name)
            .filter { $0 != "istio.stats" }
        return names?.isEmpty == false ? names : nil
    }

    func testRatingsTestDelaySample() throws {
        let (t, routes) = try ratingsRoutes(["virtual-service-ratings-test-delay.yaml"])
        XCTAssertEqual(routes[0].perFilterConfig, ["meshd.fault": .object([
            "delay": .object(["fixedDelayMs": .number(7000), "percentage": .number(100)])])])
        XCTAssertNil(routes[1].perFilterConfig)
        XCTAssertEqual(listenerFilters(t), ["meshd.fault"])
        XCTAssertNil(listenerFilters(t, "inbound"), "no route of the inbound listener has a fault")
        XCTAssertEqual(t.warnings.filter { $0.contains("fault") }, [])
    }

    func testAbortSamples() throws {
        let (_, ratings) = try ratingsRoutes(["virtual-service-ratings-test-abort.yaml"])
        XCTAssertEqual(ratings[0].perFilterConfig?["meshd.fault"],
                       .object(["abort": .object(["httpStatus": .number(500), "percentage": .number(100)])]))
        XCTAssertNil(ratings[1].perFilterConfig)
        let (_, details) = try ratingsRoutes(["fault-injection-details-v1.yaml"])
        XCTAssertEqual(details[0].perFilterConfig?["meshd.fault"],
                       .object(["abort": .object(["httpStatus": .number(555), "percentage": .number(100)])]))
    }

    func testIstioFaultFieldsAndWhatIstioDrops() throws {
        let extra = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http:
          - match: [{headers: {x-a: {exact: "1"}}}]
            fault: {delay: {fixedDelay: 50ms, percent: 30}, abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.1}}}
            route: [{destination: {host: ratings}}]
          - match: [{headers: {x-b: {exact: "1"}}}]
            fault: {delay: {exponentialDelay: 1s, percentage: {value: 5}}, abort: {http2Error: INTERNAL_ERROR}}
            route: [{destination: {host: ratings}}]
          - route: [{destination: {host: ratings}}]
        """
        let (t, routes) = try ratingsRoutes([], extra: extra)
        XCTAssertEqual(routes[0].perFilterConfig?["meshd.fault"], .object([
            "delay": .object(["fixedDelayMs": .number(50), "percentage": .number(30)]),
            "abort": .object(["grpcStatus": .number(14), "percentage": .number(0.1)]),
        ]))
        XCTAssertNil(routes[1].perFilterConfig, "Istio drops exponential delays and http2Error aborts")
        XCTAssertEqual(t.warnings.filter { $0.contains("fault") }.count, 2, "\(t.warnings)")
    }

    func testAnUnknownGRPCStatusIsInvalid() throws {
        let store = ConfigStore.parse(yaml: """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: r}
        spec:
          hosts: [ratings]
          http: [{fault: {abort: {grpcStatus: NOPE, percentage: {value: 1}}}, route: [{destination: {host: ratings}}]}]
        """)
        XCTAssertEqual(Validator.validate(store).map(\.description).filter { $0.contains("grpcStatus") }.count, 1)
    }

    func testCorsPolicy() throws {
        let extra = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http:
          - corsPolicy:
              allowOrigins: [{exact: "https://a.example"}, {prefix: "https://dev-"}, {regex: "https://.*\\\\.b\\\\.example"}]
              allowMethods: [GET, POST]
              allowHeaders: [x-custom]
              exposeHeaders: [x-trace]
              maxAge: 24h
              allowCredentials: true
              unmatchedPreflights: IGNORE
            fault: {abort: {httpStatus: 503, percentage: {value: 1}}}
            route: [{destination: {host: ratings}}]
          - match: [{uri: {prefix: /old}}]
            corsPolicy: {allowOrigin: ["https://old.example"]}
            route: [{destination: {host: ratings}}]
        """
        let (t, routes) = try ratingsRoutes([], extra: extra)
        XCTAssertEqual(routes[0].perFilterConfig?["meshd.cors"], .object([
            "allowOrigins": .array([.object(["exact": .string("https://a.example")]), .object(["prefix": .string("https://dev-")]),
                                    .object(["safeRegex": .string("https://.*\\.b\\.example")])]),
            "allowMethods": .array([.string("GET"), .string("POST")]),
            "allowHeaders": .array([.string("x-custom")]),
            "exposeHeaders": .array([.string("x-trace")]),
            "maxAgeSeconds": .number(86400),
            "allowCredentials": .bool(true),
            "forwardNotMatchingPreflights": .bool(false),
        ]))
        XCTAssertEqual(routes[1].perFilterConfig?["meshd.cors"],
                       .object(["allowOrigins": .array([.object(["exact": .string("https://old.example")])])]))
        XCTAssertEqual(listenerFilters(t), ["meshd.cors", "meshd.fault"], "Istio's order: CORS, then fault")
        XCTAssertEqual(t.warnings.filter { $0.contains("CORS") || $0.contains("cors") }, [])
    }

    func testGatewayListenersAndTheDiscoverySnapshotCarryTheFilters() throws {
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "bookinfo-gateway.yaml",
                                                      "virtual-service-ratings-test-abort.yaml"], extra: """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: bookinfo}
        spec:
          hosts: ["*"]
          gateways: [bookinfo-gateway]
          http: [{corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}, route: [{destination: {host: productpage, port: {number: 9080}}}]}]
        """)
        let gateway = ProxyIdentity.gateway(name: "ingress", namespace: "istio-system", labels: ["istio": "ingressgateway"])
        let g = Translator(store: store).translate(for: gateway)
        XCTAssertEqual(g.bootstrap.listeners.map { $0.httpFilters?.map(\.name) }, [["istio.stats", "meshd.cors"]])
        _ = assertSnapshotBuilds(g.bootstrap)

        // The discovery server's per-proxy part follows the shared routes too.
        let snapshot = TranslationSnapshot(store: store, registry: Registry(store: store))
        let expected = Translator(store: store).translate(for: productpage)
        XCTAssertEqual(listenerFilters(expected), ["meshd.fault"])
        XCTAssertEqual(try ResourceCodec.bootstrap(from: snapshot.resources(for: productpage).all), expected.bootstrap)
    }
}
