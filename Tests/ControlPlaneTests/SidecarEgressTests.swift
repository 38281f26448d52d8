import ControlPlane
import FilterHost
import Filters
import MeshAPI
import XCTest

/// A Sidecar's egress listeners with a port (TCP, TLS, HTTP, sniffed) and a sidecar's inbound
/// listener for a workload serving bytes.
final class SidecarEgressTests: XCTestCase {
    private let registry = tcpEchoRegistryYAML + "\n" + """
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: tcp-echo}
    spec:
      host: tcp-echo
      subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
    """

    /// Istio's tcp-echo-20-v2, bound to the mesh instead of the gateway.
    private let weighted = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: tcp-echo-mesh}
    spec:
      hosts: [tcp-echo]
      tcp:
      - match: [{port: 9000}]
        route:
        - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
        - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}
    """

    private var registryAndRoutes: String { registry + "\n---\n" + weighted }

    private func sidecarResource(_ egress: String, policy: String = "") -> String {
        """
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: sleep}
        spec:
          workloadSelector: {labels: {app: sleep}}
          egress:
        \(egress)
          - hosts: ["./*"]
        \(policy)
        """
    }

    private let sleep = ProxyIdentity.sidecar(name: "sleep-1", labels: ["app": "sleep"], outboundPort: 15001)

    func testTCPEgressListenerFollowsWeightedTCPRoutes() throws {
        let yaml = sidecarResource("""
          - port: {number: 9000, name: tcp, protocol: TCP}
            bind: 127.0.0.7
            hosts: [./tcp-echo.default.svc.cluster.local]
        """)
        let store = try bookinfoStore(self, samples: [], extra: registryAndRoutes + "\n---\n" + yaml)
        // port and bind are enforced now; captureMode still is not (meshd captures nothing).
        XCTAssertEqual(Validator.warnings(store).map(\.description).filter { $0.contains("spec.egress") }, [])
        let capture = try bookinfoStore(self, samples: [], extra: yaml.replacingOccurrences(of: "bind: 127.0.0.7", with: "captureMode: NONE"))
        XCTAssertEqual(Validator.warnings(capture).map(\.description).filter { $0.contains("spec.egress") }.count, 1)
        let t = Translator(store: store).translate(for: sleep)
        XCTAssertEqual(t.warnings.filter { !$0.contains("without endpoints") && !$0.contains("no endpoints") }, [])
        assertSnapshotBuilds(t.bootstrap)
        let egress = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "egress_9000" })
        XCTAssertEqual(egress.address, "127.0.0.7")
        XCTAssertEqual(egress.port, 9000)
        XCTAssertEqual(egress.routeConfig, "")
        XCTAssertEqual(egress.tcpProxy?.routes, [
            TCPProxyRoute(name: "default/tcp-echo-mesh/tcp[0]", weightedClusters: [
                WeightedCluster(name: "outbound|9000|v1|tcp-echo.default.svc.cluster.local", weight: 80),
                WeightedCluster(name: "outbound|9000|v2|tcp-echo.default.svc.cluster.local", weight: 20),
            ]),
        ])
        XCTAssertEqual(egress.tcpProxy?.networkFilters?.map(\.name), ["istio.stats"])
        XCTAssertEqual(t.bootstrap.cluster("outbound|9000|v2|tcp-echo.default.svc.cluster.local")?.endpoints,
                       [Endpoint(address: "10.0.0.42", port: 9000)])
        // The VirtualService is used here, so no "ignored" warning.
        XCTAssertFalse(t.warnings.contains { $0.contains("tcp-echo-mesh") }, "\(t.warnings)")

        // Without a VirtualService: straight to the service; without `bind`: the proxy's address.
        let plain = try bookinfoStore(self, samples: [], extra: registry + "\n---\n"
                                          + yaml.replacingOccurrences(of: "    bind: 127.0.0.7\n", with: ""))
        let p = Translator(store: plain).bootstrap(for: sleep)
        let direct = try XCTUnwrap(p.listeners.first { $0.name == "egress_9000" })
        XCTAssertEqual(direct.address, "127.0.0.1")
        XCTAssertEqual(direct.tcpProxy?.routes, [TCPProxyRoute(name: "tcp-echo.default.svc.cluster.local:9000",
                                                               cluster: "outbound|9000||tcp-echo.default.svc.cluster.local")])
    }

    func testTLSAndSniffedEgressListeners() throws {
        let yaml = sidecarResource("""
          - port: {number: 9443, name: tls, protocol: TLS}
            hosts: [./tcp-echo.default.svc.cluster.local]
          - port: {number: 9000, name: unnamed}
            hosts: [./*]
        """)
        let store = try bookinfoStore(self, samples: [], extra: registryAndRoutes + "\n---\n" + yaml)
        let b = Translator(store: store).bootstrap(for: sleep)
        assertSnapshotBuilds(b)
        // TLS: no service on 9443, so only ALLOW_ANY's passthrough by SNI.
        let tls = try XCTUnwrap(b.listeners.first { $0.name == "egress_9443" })
        XCTAssertEqual(tls.routeConfig, "")
        XCTAssertEqual(tls.tcpProxy?.routes, [TCPProxyRoute(name: "allow_any", match: TCPProxyMatch(serverNames: ["*"]),
                                                            cluster: "PassthroughCluster")])
        XCTAssertNotNil(b.cluster("PassthroughCluster"))
        // Unnamed: HTTP (the route config for that port) and bytes, sniffed per connection.
        let sniffed = try XCTUnwrap(b.listeners.first { $0.name == "egress_9000" })
        XCTAssertEqual(sniffed.routeConfig, "egress_9000")
        XCTAssertEqual(sniffed.httpFilters?.first?.name, "istio.stats")
        XCTAssertEqual(sniffed.tcpProxy?.routes.first?.name, "default/tcp-echo-mesh/tcp[0]")
        XCTAssertNotNil(b.routeConfig("egress_9000")?.virtualHosts.first { $0.name == "allow_any" })

        // REGISTRY_ONLY: no passthrough (Istio's BlackHoleCluster: the connection is closed).
        let blocked = try bookinfoStore(self, samples: [], extra: registryAndRoutes + "\n---\n" + sidecarResource("""
          - port: {number: 9443, name: tls, protocol: TLS}
            hosts: [./tcp-echo.default.svc.cluster.local]
        """, policy: "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}"))
        let r = Translator(store: blocked).bootstrap(for: sleep)
        XCTAssertEqual(r.listeners.first { $0.name == "egress_9443" }?.tcpProxy?.routes, [])
    }

    func testInboundCarriesBytesForATCPWorkload() throws {
        let store = try bookinfoStore(self, samples: [], extra: registry)
        let echo = ProxyIdentity.sidecar(name: "tcp-echo-1", labels: ["app": "tcp-echo", "version": "v1"], appPort: 19000)
        let b = Translator(store: store).bootstrap(for: echo)
        assertSnapshotBuilds(b)
        let inbound = try XCTUnwrap(b.listeners.first { $0.name == "inbound" })
        XCTAssertEqual(inbound.routeConfig, "", "a TCP-only workload's inbound serves no HTTP")
        XCTAssertEqual(inbound.tcpProxy?.routes, [TCPProxyRoute(name: "inbound", cluster: "inbound|19000||")])
        XCTAssertEqual(inbound.tcpProxy?.networkFilters?.last?.config?["reporter"]?.stringValue, "destination")
        XCTAssertEqual(inbound.meshTLS, .permissive)
        // HTTP workloads keep their HTTP-only inbound.
        let reviews = Translator(store: store).bootstrap(for: .sidecar(name: "r", labels: ["app": "reviews"], appPort: 9080))
        XCTAssertNil(reviews.listeners.first { $0.name == "inbound" }?.tcpProxy)

        // A TCP AuthorizationPolicy on the workload: network RBAC with the app's port.
        let policy = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: echo}
        spec:
          selector: {matchLabels: {app: tcp-echo}}
          action: DENY
          rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]}]
        """
        let guarded = try bookinfoStore(self, samples: [], extra: registry + "\n---\n" + policy)
        let g = Translator(store: guarded).bootstrap(for: echo)
        assertSnapshotBuilds(g)
        let filters = try XCTUnwrap(g.listeners.first { $0.name == "inbound" }?.tcpProxy?.networkFilters)
        XCTAssertEqual(filters.map(\.name), ["meshd.rbac", "istio.stats"])
        XCTAssertEqual(filters.first?.config?["destinationPort"], .number(19000))
        XCTAssertNil(filters.first?.config?["remoteFromForwardedFor"])
    }

    func testSnapshotSharesAndMatchesTranslator() throws {
        let yaml = sidecarResource("""
          - port: {number: 9000, name: tcp, protocol: TCP}
            hosts: [./tcp-echo.default.svc.cluster.local]
        """)
        let store = try bookinfoStore(self, samples: [], extra: registryAndRoutes + "\n---\n" + yaml)
        let snapshot = TranslationSnapshot(store: store, registry: Registry(store: store))
        let other = ProxyIdentity.sidecar(name: "sleep-2", labels: ["app": "sleep"], outboundPort: 15002, address: "127.0.0.9")
        for proxy in [sleep, other] {
            XCTAssertEqual(snapshot.bootstrap(for: proxy), Translator(store: store).bootstrap(for: proxy))
        }
        XCTAssertEqual(snapshot.bootstrap(for: other).listeners.first { $0.name == "egress_9000" }?.address, "127.0.0.9")
    }
}
