import ControlPlane
import FilterHost
import Filters
import MeshAPI
import XCTest

/// Gateway servers carrying bytes: TCP with `tcp` routes, TLS PASSTHROUGH with `tls` routes.
final class TCPTranslationTests: XCTestCase {
    private let ingress = ProxyIdentity.gateway(name: "ingress", namespace: "istio-system",
                                                labels: ["istio": "ingressgateway"], ports: [31400: 41400])

    private let registry = tcpEchoRegistryYAML

    func testTCPEchoSamples() throws {
        let store = try bookinfoStore(self, samples: ["tcp-echo-all-v1.yaml"], extra: registry)
        let t = Translator(store: store).translate(for: ingress)
        XCTAssertEqual(t.warnings.filter { !$0.contains("without endpoints") }, [])
        let snapshot = try XCTUnwrap(assertSnapshotBuilds(t.bootstrap))
        // Istio's TCP stats watch the gateway's TCP listener, reporting as the source.
        let statsFilters = t.bootstrap.listeners.first?.tcpProxy?.networkFilters
        XCTAssertEqual(statsFilters?.map(\.name), ["istio.stats"])
        XCTAssertEqual(statsFilters?.first?.config?["reporter"]?.stringValue, "source")
        var listeners = t.bootstrap.listeners
        for i in listeners.indices { listeners[i].tcpProxy?.networkFilters = nil }
        XCTAssertEqual(listeners, [Listener(name: "gateway_31400", address: "0.0.0.0", port: 41400, routeConfig: "",
                                                        tcpProxy: TCPProxy(routes: [TCPProxyRoute(name: "default/tcp-echo/tcp[0]",
                                                            cluster: "outbound|9000|v1|tcp-echo.default.svc.cluster.local")]))])
        XCTAssertEqual(snapshot.clusters["outbound|9000|v1|tcp-echo.default.svc.cluster.local"]?.endpoints,
                       [Endpoint(address: "10.0.0.41", port: 9000)])

        let weighted = try bookinfoStore(self, samples: ["tcp-echo-all-v1.yaml", "tcp-echo-20-v2.yaml"], extra: registry)
        let w = Translator(store: weighted).bootstrap(for: ingress)
        assertSnapshotBuilds(w)
        XCTAssertEqual(w.listeners.first?.tcpProxy?.routes.first?.weightedClusters, [
            WeightedCluster(name: "outbound|9000|v1|tcp-echo.default.svc.cluster.local", weight: 80),
            WeightedCluster(name: "outbound|9000|v2|tcp-echo.default.svc.cluster.local", weight: 20),
        ])
    }

    func testTLSPassthroughAndUnsupportedModes() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: edge, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: ["*.example.com"]
            tls: {mode: PASSTHROUGH}
          - port: {number: 15443, name: tls, protocol: TLS}
            hosts: ["*"]
            tls: {mode: AUTO_PASSTHROUGH}
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: edge-tcp, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: tcp, protocol: TCP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: nginx}
        spec:
          hosts: [nginx.example.com, other.example.com]
          gateways: [istio-system/edge]
          tls:
          - match: [{port: 443, sniHosts: [nginx.example.com]}]
            route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
          - match: [{port: 8443, sniHosts: [other.example.com]}]
            route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
          http:
          - route: [{destination: {host: productpage, port: {number: 9080}}}]
        """
        let store = try bookinfoStore(self, samples: [], extra: registry + "\n---\n" + yaml)
        let t = Translator(store: store).translate(for: ingress)
        assertSnapshotBuilds(t.bootstrap)
        let tcp = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "gateway_443" }?.tcpProxy)
        XCTAssertEqual(tcp.routes, [TCPProxyRoute(name: "default/nginx/tls[0]", match: TCPProxyMatch(serverNames: ["nginx.example.com"]),
                                                  cluster: "outbound|9000||tcp-echo.default.svc.cluster.local")])
        XCTAssertEqual(t.warnings.filter { $0.contains("edge") }, [
            "Gateway/istio-system/edge-tcp: spec.servers[0]: port 8080 already serves HTTP; TCP and TLS passthrough need a port of their own; server skipped",
        ])
        XCTAssertNotNil(t.bootstrap.listeners.first { $0.name == "gateway_15443" }?.tcpProxy)
    }

    /// Istio's east-west gateway: per service port and subset its hosts cover, a route on the
    /// SNI a sidecar sends to an SNI-DNAT cluster that carries the bytes as they are, to
    /// sidecar endpoints only.
    func testAutoPassthroughRoutesEachServicePortAndSubsetBySNIToSNIDNATClusters() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: cross-network-gateway, namespace: istio-system}
        spec:
          selector: {istio: eastwestgateway}
          servers:
          - port: {number: 15443, name: tls, protocol: TLS}
            hosts: ["*.local"]
            tls: {mode: AUTO_PASSTHROUGH}
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews}
        spec:
          hosts: [reviews.default.svc.cluster.local]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: reviews}}
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: external}
        spec:
          hosts: [api.example.com]
          ports: [{number: 443, name: tls, protocol: TLS}]
          resolution: DNS
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
          subsets: [{name: v1, labels: {version: v1}}]
        """
        let store = ConfigStore.parse(yaml: yaml, file: "eastwest.yaml")
        let registry = Registry(store: store, dynamic: [
            DynamicWorkload(name: "reviews-v1", address: "127.0.0.1", ports: ["http": 15006],
                            labels: ["app": "reviews", "version": "v1"], meshIdentity: "spiffe://cluster.local/ns/default/sa/reviews"),
            DynamicWorkload(name: "reviews-plain", address: "127.0.0.2", ports: ["http": 9080], labels: ["app": "reviews", "version": "v1"]),
        ])
        let gateway = ProxyIdentity.gateway(name: "eastwest", namespace: "istio-system", labels: ["istio": "eastwestgateway"])
        let t = Translator(store: store, registry: registry).translate(for: gateway)
        assertSnapshotBuilds(t.bootstrap)
        XCTAssertEqual(t.warnings, [])
        let all = "outbound_.9080_._.reviews.default.svc.cluster.local", v1 = "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
        let tcp = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "gateway_15443" }?.tcpProxy)
        XCTAssertEqual(tcp.routes, [all, v1].map { TCPProxyRoute(name: $0, match: TCPProxyMatch(serverNames: [$0]), cluster: $0) })
        for name in [all, v1] {
            let cluster = try XCTUnwrap(t.bootstrap.clusters.first { $0.name == name })
            XCTAssertNil(cluster.tls, name)
            XCTAssertEqual(cluster.endpoints, [Endpoint(address: "127.0.0.1", port: 15006)], name)
        }
        XCTAssertEqual(IstioSNI.name(forCluster: "outbound|9080|v1|reviews.default.svc.cluster.local"), v1)
        XCTAssertNil(IstioSNI.name(forCluster: "PassthroughCluster"))
    }

    /// The TCP proxy listener's `meshd.rbac` network filter config for `policies`.
    private func tcpRBAC(_ policies: String, file: StaticString = #filePath, line: UInt = #line) throws -> (JSONValue?, [String]) {
        let store = try bookinfoStore(self, samples: ["tcp-echo-all-v1.yaml"], extra: registry + "\n---\n" + policies)
        let t = Translator(store: store).translate(for: ingress)
        assertSnapshotBuilds(t.bootstrap, file: file, line: line)
        let listener = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "gateway_31400" }, file: file, line: line)
        XCTAssertNil(listener.httpFilters, file: file, line: line)
        return (listener.tcpProxy?.networkFilters?.first { $0.name == "meshd.rbac" }?.config, t.warnings)
    }

    func testAuthorizationOnATCPGatewayBecomesNetworkRBACWithTheServerPort() throws {
        let (config, warnings) = try tcpRBAC("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-local, namespace: istio-system}
        spec:
          selector: {matchLabels: {istio: ingressgateway}}
          action: DENY
          rules: [{from: [{source: {remoteIpBlocks: [127.0.0.1/32]}}], to: [{operation: {ports: ["31400"]}}]}]
        """)
        XCTAssertEqual(config?["destinationPort"], .number(31400))
        XCTAssertEqual(config?["policies"]?.arrayValue?.first?["rules"], .array([.object([
            "from": .array([.object(["source": .object(["remoteIpBlocks": .array([.string("127.0.0.1/32")])])])]),
            "to": .array([.object(["operation": .object(["ports": .array([.string("31400")])])])]),
        ])]))
        XCTAssertFalse(warnings.contains { $0.contains("TCP") }, "\(warnings)")
    }

    func testHTTPFieldsDropAnAllowRuleAndWidenADenyRule() throws {
        let (config, warnings) = try tcpRBAC("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-get, namespace: istio-system}
        spec:
          action: ALLOW
          rules:
          - to: [{operation: {methods: [GET]}}]
          - from: [{source: {requestPrincipals: ["*"]}}]
          - when: [{key: "request.headers[x-user]", values: [a]}]
          - to: [{operation: {ports: ["31400"]}}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-get, namespace: istio-system}
        spec:
          action: DENY
          rules:
          - from: [{source: {ipBlocks: [10.0.0.0/8], requestPrincipals: ["*"]}}]
            to: [{operation: {methods: [GET], paths: [/admin]}}]
            when: [{key: "request.auth.claims[iss]", values: [x]}, {key: destination.port, values: ["31400"]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ext, namespace: istio-system}
        spec:
          action: CUSTOM
          provider: {name: my-authz}
          rules: [{}]
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: istio-system}
        spec:
          jwtRules: [{issuer: "https://example.com", jwksUri: "https://example.com/jwks.json"}]
        """)
        let policies = try XCTUnwrap(config?["policies"]?.arrayValue)
        let byName = Dictionary(uniqueKeysWithValues: policies.map { ($0["name"]?.stringValue ?? "", $0) })
        XCTAssertEqual(policies.count, 2, "CUSTOM is HTTP only")
        XCTAssertEqual(byName["istio-system.allow-get"]?["rules"], .array([.object([
            "to": .array([.object(["operation": .object(["ports": .array([.string("31400")])])])]),
        ])]), "an ALLOW rule naming an HTTP field is dropped")
        XCTAssertEqual(byName["istio-system.deny-get"]?["rules"], .array([.object([
            "from": .array([.object(["source": .object(["ipBlocks": .array([.string("10.0.0.0/8")])])])]),
            "to": .array([.object(["operation": .object([:])])]),
            "when": .array([.object(["key": .string("destination.port"), "values": .array([.string("31400")])])]),
        ])]), "a DENY rule loses its HTTP fields")
        XCTAssertTrue(warnings.contains("AuthorizationPolicy/istio-system/ext: spec.action: CUSTOM authorization is HTTP only: not applied to the TCP traffic of listener gateway_31400"), "\(warnings)")
        XCTAssertTrue(warnings.contains("RequestAuthentication/istio-system/jwt: JWTs are HTTP: this RequestAuthentication does not apply to the TCP traffic of listener gateway_31400"), "\(warnings)")
    }

    func testSidecarsWarnAboutTCPRoutes() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: echo-mesh}
        spec:
          hosts: [tcp-echo]
          tcp: [{route: [{destination: {host: tcp-echo}}]}]
        """
        let store = try bookinfoStore(self, samples: [], extra: registry + "\n---\n" + yaml)
        let t = Translator(store: store).translate(for: .sidecar(name: "pp", labels: ["app": "productpage"], appPort: 9080))
        XCTAssertTrue(t.warnings.contains("VirtualService/default/echo-mesh: spec.tcp: tcp and tls routes reach a sidecar through a Sidecar egress listener with a port (meshd captures no traffic); this sidecar has none, so they are ignored here"),
                      "\(t.warnings)")
    }
}
