import ControlPlane
import FilterHost
import MeshAPI
import NIOHTTP1
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

final class SidecarTranslationTests: XCTestCase {
    private let productpage = ProxyIdentity.sidecar(name: "productpage-v1", namespace: "default",
                                                    labels: ["app": "productpage", "version": "v1"],
                                                    outboundPort: 15001, inboundPort: 15006, appPort: 9080)

    func testBookinfoSidecarWithWeightedReviews() throws {
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml",
                                                      "bookinfo-gateway.yaml"])
        let t = Translator(store: store).translate(for: productpage)
        let b = t.bootstrap
        assertSnapshotBuilds(b)
        XCTAssertEqual(b.listeners.map { "\($0.name)@\($0.address):\($0.port)->\($0.routeConfig)" },
                       ["inbound@127.0.0.1:15006->inbound", "outbound@127.0.0.1:15001->outbound"])
        XCTAssertEqual(b.clusters.map(\.name), [
            "PassthroughCluster",
            "inbound|9080||",
            "outbound|9080|v1|details.default.svc.cluster.local",
            "outbound|9080|v1|productpage.default.svc.cluster.local",
            "outbound|9080|v1|ratings.default.svc.cluster.local",
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2-mysql-vm|ratings.default.svc.cluster.local",
            "outbound|9080|v2-mysql|ratings.default.svc.cluster.local",
            "outbound|9080|v2|details.default.svc.cluster.local",
            "outbound|9080|v2|ratings.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080|v3|reviews.default.svc.cluster.local",
            "outbound|9080||details.default.svc.cluster.local",
            "outbound|9080||productpage.default.svc.cluster.local",
            "outbound|9080||ratings.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ])
        XCTAssertEqual(b.cluster("inbound|9080||")?.endpoints, [Endpoint(address: "127.0.0.1", port: 9080)])
        XCTAssertEqual(b.cluster("outbound|9080|v1|reviews.default.svc.cluster.local")?.endpoints,
                       [Endpoint(address: "10.0.0.11", port: 9080)])
        XCTAssertEqual(b.cluster("outbound|9080||reviews.default.svc.cluster.local")?.endpoints.count, 3)
        XCTAssertEqual(b.cluster("outbound|9080|v1|reviews.default.svc.cluster.local")?.lbPolicy, .leastRequest)
        XCTAssertEqual(b.cluster("outbound|9080|v2|ratings.default.svc.cluster.local")?.endpoints, [])

        let outbound = try XCTUnwrap(b.routeConfig("outbound"))
        let reviews = try XCTUnwrap(outbound.virtualHost(domain: "reviews"))
        XCTAssertEqual(reviews.name, "vs:default/reviews")
        XCTAssertEqual(reviews.domains, [
            "reviews:9080", "reviews.default:9080", "reviews.default.svc:9080", "reviews.default.svc.cluster.local:9080",
            "reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local",
        ])
        XCTAssertEqual(reviews.routes.count, 1)
        XCTAssertEqual(reviews.routes[0].match, RouteMatch(prefix: "/"))
        XCTAssertEqual(reviews.routes[0].route?.weightedClusters, [
            WeightedCluster(name: "outbound|9080|v1|reviews.default.svc.cluster.local", weight: 80),
            WeightedCluster(name: "outbound|9080|v2|reviews.default.svc.cluster.local", weight: 20),
        ])
        XCTAssertEqual(reviews.routes[0].route?.timeoutMs, 0)
        // No VirtualService for ratings: the default route to the service's cluster.
        let ratings = try XCTUnwrap(outbound.virtualHost(domain: "ratings.default:9080"))
        XCTAssertEqual(ratings.name, "ratings.default.svc.cluster.local:9080")
        XCTAssertEqual(ratings.routes, [Route(name: "default", match: RouteMatch(prefix: "/"),
                                              route: RouteAction(cluster: "outbound|9080||ratings.default.svc.cluster.local", timeoutMs: 0,
                                                                 retryPolicy: .istioDefault))])
        // The bookinfo VirtualService is bound to the gateway only.
        XCTAssertNil(outbound.virtualHosts.first { $0.name == "vs:default/bookinfo" })
        XCTAssertEqual(b.routeConfig("inbound")?.virtualHosts.first?.routes.first?.route?.cluster, "inbound|9080||")
        XCTAssertEqual(b.luaPlugins, [])
    }

    func testJasonHeaderMatchRoutesToV2() throws {
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml",
                                                      "virtual-service-reviews-jason-v2-v3.yaml", "bookinfo-gateway.yaml"])
        let b = Translator(store: store).bootstrap(for: productpage)
        let snapshot = try XCTUnwrap(assertSnapshotBuilds(b))
        let reviews = try XCTUnwrap(b.routeConfig("outbound")?.virtualHost(domain: "reviews"))
        XCTAssertEqual(reviews.routes.map(\.match), [
            RouteMatch(prefix: "/", headers: [HeaderMatcher(name: "end-user", exact: "jason")]),
            RouteMatch(prefix: "/"),
        ])
        XCTAssertEqual(reviews.routes.map { $0.route?.cluster }, [
            "outbound|9080|v2|reviews.default.svc.cluster.local", "outbound|9080|v3|reviews.default.svc.cluster.local",
        ])
        // The proxy's route table picks them as the VirtualService says.
        let table = try XCTUnwrap(snapshot.routeTables["outbound"])
        let jason = table.select(authority: "reviews:9080", path: "/reviews/1", method: "GET", headers: ["end-user": "jason"])
        XCTAssertEqual(jason?.route.route?.cluster, "outbound|9080|v2|reviews.default.svc.cluster.local")
        let other = table.select(authority: "reviews.default.svc.cluster.local", path: "/", method: "GET", headers: [:])
        XCTAssertEqual(other?.route.route?.cluster, "outbound|9080|v3|reviews.default.svc.cluster.local")
        XCTAssertEqual(table.select(authority: "details:9080", path: "/", method: "GET", headers: [:])?.virtualHost,
                       "details.default.svc.cluster.local:9080")
    }

    /// Istio accepts `End-User` (header names match case-insensitively) and weights that do
    /// not sum to 100 (split in proportion): both translate, and the proxy takes them.
    func testUpperCaseHeaderNamesAndWeightsNotSummingTo100() throws {
        let vs = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - match: [{headers: {End-User: {exact: jason}}}]
            route: [{destination: {host: reviews, subset: v2}}]
          - route:
            - {destination: {host: reviews, subset: v1}, weight: 33}
            - {destination: {host: reviews, subset: v2}, weight: 33}
            - {destination: {host: reviews, subset: v3}, weight: 33}
        """
        let store = ConfigStore.parse(yaml: bookinfoRegistryYAML + "\n---\n" + vs)
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        let b = Translator(store: store).bootstrap(for: productpage)
        let snapshot = try XCTUnwrap(assertSnapshotBuilds(b))
        let reviews = try XCTUnwrap(b.routeConfig("outbound")?.virtualHost(domain: "reviews"))
        XCTAssertEqual(reviews.routes.first?.match.headers, [HeaderMatcher(name: "end-user", exact: "jason")])
        XCTAssertEqual(reviews.routes.last?.route?.weightedClusters?.map(\.weight), [33, 33, 33])
        let table = try XCTUnwrap(snapshot.routeTables["outbound"])
        let jason = table.select(authority: "reviews:9080", path: "/", method: "GET", headers: ["end-user": "jason"])
        XCTAssertEqual(jason?.route.route?.cluster, "outbound|9080|v2|reviews.default.svc.cluster.local")
    }

    func testMatchRewriteRedirectAndHeaderTranslation() throws {
        let vs = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http:
          - name: api
            match:
            - uri: {prefix: /api/}
              queryParams: {debug: {exact: ""}, v: {regex: "[0-9]+"}}
              method: {regex: "GET|HEAD"}
              authority: {prefix: ratings}
              scheme: {exact: http}
              withoutHeaders: {x-skip: {}}
            - uri: {exact: /Old}
              ignoreUriCase: true
            rewrite: {uri: /v2/, authority: ratings.internal}
            headers:
              request: {set: {x-route: api}, remove: [x-debug]}
              response: {add: {x-served-by: ratings}}
            timeout: 2.5s
            route: [{destination: {host: ratings, subset: v1}, headers: {request: {set: {x-subset: v1}}}}]
          - name: moved
            match: [{uri: {exact: /legacy}}]
            redirect: {uri: /new, authority: new.example.com, redirectCode: 302}
          - name: exact-rewrite
            match: [{uri: {regex: "/item/[0-9]+"}, port: 9080}]
            rewrite: {uri: /item}
            route: [{destination: {host: ratings}}]
          - name: other-port
            match: [{port: 9999}]
            directResponse: {status: 418}
          - name: teapot
            directResponse: {status: 503, body: {string: down}}
        """
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml"], extra: vs)
        let t = Translator(store: store).translate(for: productpage)
        assertSnapshotBuilds(t.bootstrap)
        let ratings = try XCTUnwrap(t.bootstrap.routeConfig("outbound")?.virtualHost(domain: "ratings"))
        XCTAssertEqual(ratings.routes.map { $0.name ?? "-" }, ["api", "api", "moved", "exact-rewrite", "teapot"])
        let api = ratings.routes[0]
        XCTAssertEqual(api.match, RouteMatch(prefix: "/api/", headers: [
            HeaderMatcher(name: "x-skip", present: false),
            HeaderMatcher(name: ":method", safeRegex: "GET|HEAD"),
            HeaderMatcher(name: ":authority", prefix: "ratings"),
            HeaderMatcher(name: "x-forwarded-proto", exact: "http"),
        ], queryParams: [QueryParameterMatcher(name: "debug", present: true), QueryParameterMatcher(name: "v", safeRegex: "[0-9]+")]))
        XCTAssertEqual(api.route, RouteAction(cluster: "outbound|9080|v1|ratings.default.svc.cluster.local", timeoutMs: 2500,
                                              prefixRewrite: "/v2/", hostRewrite: "ratings.internal",
                                              retryPolicy: .istioDefault))
        XCTAssertEqual(api.headers, HeaderOperations(request: HeaderMutation(set: ["x-route": "api", "x-subset": "v1"], remove: ["x-debug"]),
                                                     response: HeaderMutation(add: ["x-served-by": "ratings"])))
        XCTAssertEqual(ratings.routes[1].match, RouteMatch(safeRegex: "(?i)/Old"))
        XCTAssertEqual(ratings.routes[1].route?.pathRewrite, "/v2/")
        XCTAssertEqual(ratings.routes[2].redirect, RedirectAction(uri: "/new", authority: "new.example.com", responseCode: 302))
        XCTAssertEqual(ratings.routes[3].route?.pathRewrite, "/item")
        XCTAssertEqual(ratings.routes[3].route?.cluster, "outbound|9080||ratings.default.svc.cluster.local")
        XCTAssertEqual(ratings.routes[4].directResponse, DirectResponse(status: 503, body: "down"))
        XCTAssertEqual(t.warnings, [])
    }

    func testSidecarResourceNarrowsWhatTheProxyReceives() throws {
        let sidecar = """
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: productpage}
        spec:
          workloadSelector: {labels: {app: productpage}}
          egress:
          - hosts: ["./reviews.default.svc.cluster.local", "istio-system/*"]
        """
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"],
                                      extra: sidecar)
        let b = Translator(store: store).bootstrap(for: productpage)
        assertSnapshotBuilds(b)
        XCTAssertEqual(b.routeConfig("outbound")?.virtualHosts.map(\.name), ["vs:default/reviews", "allow_any"])
        XCTAssertEqual(b.clusters.map(\.name), [
            "PassthroughCluster", "inbound|9080||", "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local", "outbound|9080|v3|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ])
        // Another workload is not narrowed.
        let ratings = ProxyIdentity.sidecar(name: "ratings-v1", labels: ["app": "ratings"])
        XCTAssertEqual(Translator(store: store).bootstrap(for: ratings).routeConfig("outbound")?.virtualHosts.count, 5)
    }

    func testDeterministicAndRegisteredWorkloadsAppear() throws {
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"])
        var registry = Registry(store: store)
        let before = Translator(store: store, registry: registry).bootstrap(for: productpage)
        XCTAssertEqual(before, Translator(store: store, registry: registry).bootstrap(for: productpage))
        registry.register(workload: DynamicWorkload(name: "ratings-v2-x", address: "127.0.0.1", ports: ["http": 18080],
                                                    labels: ["app": "ratings", "version": "v2"]))
        let after = Translator(store: store, registry: registry).bootstrap(for: productpage)
        XCTAssertNotEqual(before, after)
        XCTAssertEqual(after.cluster("outbound|9080|v2|ratings.default.svc.cluster.local")?.endpoints,
                       [Endpoint(address: "127.0.0.1", port: 18080)])
    }

    func testDestinationRulePoliciesAndTLS() throws {
        let store = ConfigStore.load(files: [try sample("egress-rule-google-apis.yaml"), try sample("destination-rule-reviews.yaml")])
        let t = Translator(store: store).translate(for: productpage)
        let b = t.bootstrap
        assertSnapshotBuilds(b)
        let https = try XCTUnwrap(b.cluster("outbound|443||www.googleapis.com"))
        XCTAssertEqual(https.tls, UpstreamTLS(sni: "www.googleapis.com"))
        XCTAssertEqual(https.lbPolicy, .roundRobin)
        XCTAssertEqual(https.endpoints, [Endpoint(address: "www.googleapis.com", port: 443)])
        XCTAssertNil(b.cluster("outbound|80||www.googleapis.com")?.tls)
        // The VirtualService sends port 80 to the 443 cluster; only the HTTP port gets a virtual host.
        let vhosts = try XCTUnwrap(b.routeConfig("outbound")?.virtualHosts)
        XCTAssertEqual(vhosts.map(\.name), ["vs:default/rewrite-port-for-googleapis", "allow_any"])
        XCTAssertEqual(vhosts[0].domains, ["www.googleapis.com:80", "www.googleapis.com"])
        XCTAssertEqual(vhosts[0].routes.first?.route?.cluster, "outbound|443||www.googleapis.com")
        // No ServiceEntry for reviews: its DestinationRule alone makes no cluster.
        XCTAssertFalse(b.clusters.contains { $0.name.hasSuffix("reviews.default.svc.cluster.local") })
    }
}
