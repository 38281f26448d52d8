import ControlPlane
import MeshAPI
import XCTest

/// Delegate VirtualServices, after Istio's docs example and its merge rules
/// (pilot/pkg/model/virtualservice.go): root matches narrowed by the delegate's, conflicts
/// dropped, the root's route settings inherited, one level only.
final class DelegationTests: XCTestCase {
    private let services = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: productpage, namespace: nsa}
    spec:
      hosts: [productpage.nsa.svc.cluster.local, productpage-v1.nsa.svc.cluster.local]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: 127.0.0.1}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews, namespace: nsb}
    spec:
      hosts: [reviews.nsb.svc.cluster.local]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: 127.0.0.2}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: bookinfo, namespace: default}
    spec:
      hosts: [bookinfo.example.com]
      ports: [{number: 80, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: 127.0.0.3}]
    """

    /// Istio's "Delegate VirtualService" example, on the mesh.
    private let delegation = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: bookinfo}
    spec:
      hosts: [bookinfo.example.com]
      http:
      - name: pp
        match: [{uri: {prefix: /productpage}}]
        timeout: 3s
        delegate: {name: productpage, namespace: nsa}
      - match: [{uri: {prefix: /reviews}}]
        delegate: {name: reviews, namespace: nsb}
      - match: [{uri: {prefix: /missing}}]
        delegate: {name: nothing}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: productpage, namespace: nsa}
    spec:
      http:
      - name: v1
        match: [{uri: {prefix: /productpage/v1/}}]
        route: [{destination: {host: productpage-v1}}]
      - match: [{uri: {prefix: /other}}]
        route: [{destination: {host: productpage}}]
      - route: [{destination: {host: productpage}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews, namespace: nsb}
    spec:
      http:
      - route: [{destination: {host: reviews}}]
    """

    func testRootRoutesAreReplacedByTheDelegatesMergedRoutes() throws {
        let proxy = ProxyIdentity.sidecar(name: "client", namespace: "default", appPort: 80)
        let t = Translator(store: ConfigStore.parse(yaml: services + "\n---\n" + delegation)).translate(for: proxy)
        let vhost = try XCTUnwrap(t.bootstrap.routeConfig("outbound")?.virtualHosts.first { $0.name == "vs:default/bookinfo" })
        let routes = vhost.routes.map { "\($0.name ?? "-") \($0.match.prefix ?? "") \($0.route?.cluster ?? "") \($0.route?.timeoutMs ?? -1)" }
        XCTAssertEqual(routes, [
            "pp-v1 /productpage/v1/ outbound|9080||productpage-v1.nsa.svc.cluster.local 3000",
            "pp /productpage outbound|9080||productpage.nsa.svc.cluster.local 3000",
            "- /reviews outbound|9080||reviews.nsb.svc.cluster.local 0",
        ], "short hosts resolve in the delegate's namespace; the root's timeout and name carry over")
        XCTAssertTrue(t.warnings.contains { $0.contains("VirtualService/nsa/productpage: spec.http[1].match: conflicts with the match of VirtualService/default/bookinfo spec.http[0]") }, "\(t.warnings)")
        XCTAssertTrue(t.warnings.contains { $0.contains("VirtualService/default/bookinfo: spec.http[2].delegate: delegate VirtualService default/nothing not found") }, "\(t.warnings)")
        assertSnapshotBuilds(t.bootstrap)
    }

    func testStringMatchConflictsFollowIstio() {
        func m(exact: String? = nil, prefix: String? = nil, regex: String? = nil) -> StringMatch {
            StringMatch(exact: exact, prefix: prefix, regex: regex)
        }
        XCTAssertFalse(VirtualServiceDelegation.conflicts(m(prefix: "/a"), m(prefix: "/a/b")))
        XCTAssertTrue(VirtualServiceDelegation.conflicts(m(prefix: "/a/b"), m(prefix: "/a")))
        XCTAssertFalse(VirtualServiceDelegation.conflicts(m(prefix: "/a"), m(exact: "/a/x")))
        XCTAssertTrue(VirtualServiceDelegation.conflicts(m(exact: "/a"), m(prefix: "/a")))
        XCTAssertFalse(VirtualServiceDelegation.conflicts(m(exact: "/a"), m(exact: "/a")))
        XCTAssertTrue(VirtualServiceDelegation.conflicts(m(regex: "/a.*"), m(regex: "/a.*")))
        XCTAssertTrue(VirtualServiceDelegation.conflicts(m(prefix: "/a"), m(regex: "/a.*")))
        XCTAssertFalse(VirtualServiceDelegation.conflicts(nil, m(regex: "/a.*")))
    }
}

/// Istio's locality load balancing, translated per proxy.
final class LocalityTranslationTests: XCTestCase {
    private func endpoints(_ lb: String, outlier: Bool = true) throws -> [String: (Int?, Int?)] {
        let yaml = """
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
        kind: WorkloadEntry
        metadata: {name: same-zone}
        spec: {address: 10.0.0.1, labels: {app: reviews}, locality: us-east/z1/s1}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: other-zone}
        spec: {address: 10.0.0.2, labels: {app: reviews}, locality: us-east/z2}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: west}
        spec: {address: 10.0.0.3, labels: {app: reviews}, locality: us-west/z1}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: eu}
        spec: {address: 10.0.0.4, labels: {app: reviews, topology.kubernetes.io/region: eu}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          trafficPolicy:
            \(outlier ? "outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s}" : "")
            loadBalancer: {localityLbSetting: \(lb)}
        """
        let proxy = ProxyIdentity.sidecar(name: "client", namespace: "default",
                                          labels: ["app": "client", "topology.kubernetes.io/region": "us-east",
                                                   "topology.kubernetes.io/zone": "z1", "topology.istio.io/subzone": "s1"],
                                          appPort: 80)
        let t = Translator(store: ConfigStore.parse(yaml: yaml)).translate(for: proxy)
        XCTAssertEqual(t.configWarnings, [])
        let cluster = try XCTUnwrap(t.bootstrap.cluster("outbound|9080||reviews.default.svc.cluster.local"))
        return Dictionary(uniqueKeysWithValues: cluster.endpoints.map { ($0.address, ($0.priority, $0.weight)) })
    }

    func testFailoverPrioritiesByNearnessWithOutlierDetectionOnly() throws {
        let e = try endpoints("{enabled: true}")
        XCTAssertEqual(e.mapValues(\.0), ["10.0.0.1": 0, "10.0.0.2": 2, "10.0.0.3": 3, "10.0.0.4": 3])
        let target = try endpoints("{failover: [{from: us-east, to: eu}]}")
        XCTAssertEqual(target.mapValues(\.0), ["10.0.0.1": 0, "10.0.0.2": 2, "10.0.0.3": 4, "10.0.0.4": 3])
        XCTAssertEqual(try endpoints("{enabled: true}", outlier: false).mapValues { $0.0 ?? 0 }.values.max(), 0,
                       "no outlier detection: nothing would ever fail over, so no priorities")
        XCTAssertEqual(try endpoints("{enabled: false}").mapValues { $0.0 ?? 0 }.values.max(), 0)
    }

    func testDistributeSharesEachLocalitysPercent() throws {
        let e = try endpoints(#"{distribute: [{from: "us-east/z1/*", to: {"us-east/*": 80, "us-west/z1/*": 20}}]}"#)
        XCTAssertEqual(e.mapValues(\.1), ["10.0.0.1": 40_000, "10.0.0.2": 40_000, "10.0.0.3": 20_000, "10.0.0.4": 0])
    }
}
