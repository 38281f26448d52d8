import ControlPlane
import FilterHost
import MeshAPI
import Filters
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

final class GatewayTranslationTests: XCTestCase {
    private let ingress = ProxyIdentity.gateway(name: "ingress", namespace: "istio-system",
                                                labels: ["istio": "ingressgateway"], ports: [8080: 18080])

    func testBookinfoGateway() throws {
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml",
                                                      "bookinfo-gateway.yaml"])
        let t = Translator(store: store).translate(for: ingress)
        let b = t.bootstrap
        let snapshot = try XCTUnwrap(assertSnapshotBuilds(b))
        XCTAssertEqual(b.listeners.map { var l = $0; l.httpFilters = nil; return l },
                       [Listener(name: "gateway_8080", address: "0.0.0.0", port: 18080, routeConfig: "http.8080")])
        // A gateway reports Istio's metrics as the client's end, with its own workload facts.
        let stats = try XCTUnwrap(b.listeners[0].httpFilters?.first)
        XCTAssertEqual(stats.name, "istio.stats")
        XCTAssertEqual(stats.config?["reporter"], .string("source"))
        XCTAssertEqual(stats.config?["workload"]?["name"], .string("ingress"))
        XCTAssertEqual(stats.config?["workload"]?["namespace"], .string("istio-system"))
        XCTAssertEqual(b.clusters.map(\.name), ["outbound|9080||productpage.default.svc.cluster.local"])
        XCTAssertEqual(b.clusters[0].endpoints, [Endpoint(address: "10.0.0.1", port: 9081)])
        let vhosts = try XCTUnwrap(b.routeConfig("http.8080")?.virtualHosts)
        XCTAssertEqual(vhosts.map(\.name), ["vs:default/bookinfo"])
        XCTAssertEqual(vhosts[0].domains, ["*"])
        XCTAssertEqual(vhosts[0].routes.map(\.match), [
            RouteMatch(path: "/productpage"), RouteMatch(prefix: "/static"), RouteMatch(path: "/login"),
            RouteMatch(path: "/logout"), RouteMatch(prefix: "/api/v1/products"),
        ])
        XCTAssertTrue(vhosts[0].routes.allSatisfy { $0.route?.cluster == "outbound|9080||productpage.default.svc.cluster.local" })
        let table = try XCTUnwrap(snapshot.routeTables["http.8080"])
        XCTAssertNotNil(table.select(authority: "bookinfo.example.com", path: "/static/app.css", method: "GET", headers: [:]))
        XCTAssertNil(table.select(authority: "bookinfo.example.com", path: "/admin", method: "GET", headers: [:]))
        // A proxy the selector does not match gets nothing.
        let other = Translator(store: store).bootstrap(for: .gateway(name: "egress", labels: ["istio": "egressgateway"]))
        XCTAssertEqual(other, Bootstrap())
    }

    func testServerHostsTLSAndHTTPSRedirect() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: web, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 80, name: http, protocol: HTTP}
            hosts: ["default/*.example.com"]
            tls: {httpsRedirect: true}
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: ["default/*.example.com", "shop/*"]
            tls: {mode: SIMPLE, serverCertificate: /certs/web.pem, privateKey: /certs/web.key}
          - port: {number: 31400, name: tcp, protocol: TCP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop}
        spec:
          hosts: [shop.example.com, "*"]
          gateways: [istio-system/web]
          http:
          - match: [{uri: {prefix: /cart}, gateways: [istio-system/web]}, {uri: {prefix: /mesh-only}, gateways: [mesh]}]
            route: [{destination: {host: productpage, port: {number: 9080}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: hidden, namespace: other}
        spec:
          hosts: [hidden.example.com]
          gateways: [istio-system/web]
          http: [{directResponse: {status: 404}}]
        """
        let store = try bookinfoStore(self, samples: [], extra: yaml)
        let t = Translator(store: store).translate(for: ingress)
        let b = t.bootstrap
        assertSnapshotBuilds(b)
        XCTAssertEqual(b.listeners.map { "\($0.name):\($0.port):\($0.tls?.certificateChain ?? "-")" },
                       ["gateway_443:443:/certs/web.pem", "gateway_80:80:-"])
        let http = try XCTUnwrap(b.routeConfig("http.80")?.virtualHosts)
        XCTAssertEqual(http.map(\.domains), [["shop.example.com", "*.example.com"]])
        XCTAssertEqual(http[0].routes, [Route(name: "https_redirect", match: RouteMatch(prefix: "/"),
                                              redirect: RedirectAction(scheme: "https", responseCode: 301))])
        let https = try XCTUnwrap(b.routeConfig("http.443")?.virtualHosts)
        XCTAssertEqual(https.map(\.name), ["vs:default/shop"])
        XCTAssertEqual(https[0].domains, ["shop.example.com", "*.example.com"])
        XCTAssertEqual(https[0].routes.map(\.match), [RouteMatch(prefix: "/cart")])
        XCTAssertEqual(t.warnings, ["Gateway/istio-system/web: spec.servers[2]: no VirtualService has tcp or tls routes for port 31400; no listener"])
    }

    func testSamplesTranslateForGatewaysAndSidecars() throws {
        // Every sample file alone translates into a Bootstrap the proxy accepts.
        let dir = try istioSamplesDirectory()
        for f in try FileManager.default.contentsOfDirectory(atPath: dir).filter({ $0.hasSuffix(".yaml") }).sorted() {
            let store = try bookinfoStore(self, samples: [f])
            let translator = Translator(store: store)
            for proxy in [ingress, .sidecar(name: "pp", labels: ["app": "productpage"], appPort: 9080)] {
                let b = translator.bootstrap(for: proxy)
                do { _ = try ProxySnapshot.build(b, version: 1, registry: FilterCatalog.registry) } catch {
                    XCTFail("\(f) for \(proxy.kind): \(error)")
                }
            }
        }
    }
}
