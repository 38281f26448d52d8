import ControlPlane
import Foundation
import XCTest
import Transport
import LuaRuntime

final class AnalyzerTests: XCTestCase {
    private func findings(_ yaml: String) -> [String] {
        let store = ConfigStore.parse(yaml: yaml, file: "a.yaml")
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        return Analyzer.analyze(store).map(\.description)
    }

    func testBrokenReferences() {
        let yaml = bookinfoRegistryYAML + """

        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}, {name: v9, labels: {version: v9}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          gateways: [mesh, missing-gateway]
          http:
          - route:
            - {destination: {host: reviews, subset: v1}, weight: 50}
            - {destination: {host: reviews, subset: v2}, weight: 50}
          - route: [{destination: {host: nothere}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ghost}
        spec: {host: ghost.example.com}
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: lonely}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        """
        XCTAssertEqual(findings(yaml), [
            "Warning [SubsetSelectsNoEndpoints] a.yaml:63: DestinationRule/default/reviews: spec.subsets[1]: subset \"v9\" selects no endpoints of reviews.default.svc.cluster.local",
            "Error [ReferencedResourceNotFound] a.yaml:70: VirtualService/default/reviews: spec.gateways[1]: gateway \"missing-gateway\" not found (no Gateway default/missing-gateway)",
            "Error [ReferencedResourceNotFound] a.yaml:70: VirtualService/default/reviews: spec.http[0].route[1].destination.subset: subset \"v2\" of host \"reviews\" is not defined by DestinationRule/default/reviews",
            "Error [ReferencedResourceNotFound] a.yaml:70: VirtualService/default/reviews: spec.http[1].route[0].destination.host: host \"nothere\" (nothere.default.svc.cluster.local) is not a known service: no ServiceEntry defines it",
            "Warning [ReferencedResourceNotFound] a.yaml:82: DestinationRule/default/ghost: spec.host: host \"ghost.example.com\" is not a known service: no ServiceEntry defines it",
            "Warning [UnboundGateway] a.yaml:87: Gateway/default/lonely: no VirtualService binds this Gateway",
        ])
    }

    func testSubsetWithoutAnyDestinationRule() {
        let yaml = bookinfoRegistryYAML + """

        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http: [{route: [{destination: {host: ratings, subset: v1, port: {number: 9999}}}]}]
        """
        XCTAssertEqual(findings(yaml), [
            "Error [ReferencedResourceNotFound] a.yaml:63: VirtualService/default/ratings: spec.http[0].route[0].destination.port.number: port 9999 is not a port of ratings.default.svc.cluster.local (ports: 9080)",
            "Error [ReferencedResourceNotFound] a.yaml:63: VirtualService/default/ratings: spec.http[0].route[0].destination.subset: subset \"v1\" of host \"ratings\" not found: no DestinationRule for ratings.default.svc.cluster.local",
        ])
    }

    func testPluginTargetsThatDoNotExist() {
        let yaml = bookinfoRegistryYAML + """

        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http: [{name: main, route: [{destination: {host: reviews}}]}]
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: tagger}
        spec:
          targetRefs:
          - {kind: VirtualService, name: reviews, sectionName: nope}
          - {kind: VirtualService, name: missing}
          - {kind: Gateway, name: nogw}
          - {kind: Service, name: nosvc}
          - {kind: Service, name: ratings}
          inline: "function envoy_on_request(h) end"
        ---
        apiVersion: extensions.istio.io/v1alpha1
        kind: TrafficExtension
        metadata: {name: counter}
        spec:
          targetRefs: [{kind: Service, name: reviews}]
          wasm: {url: "oci://example/counter:1"}
        """
        XCTAssertEqual(findings(yaml), [
            "Error [ReferencedResourceNotFound] a.yaml:70: LuaPlugin/default/tagger: spec.targetRefs[0].sectionName: VirtualService default/reviews has no http route named \"nope\"",
            "Error [ReferencedResourceNotFound] a.yaml:70: LuaPlugin/default/tagger: spec.targetRefs[1]: target VirtualService default/missing not found",
            "Error [ReferencedResourceNotFound] a.yaml:70: LuaPlugin/default/tagger: spec.targetRefs[2]: target Gateway default/nogw not found",
            "Error [ReferencedResourceNotFound] a.yaml:70: LuaPlugin/default/tagger: spec.targetRefs[3]: target Service nosvc (nosvc.default.svc.cluster.local) not found",
            "Warning [UnsupportedExtension] a.yaml:82: TrafficExtension/default/counter: spec.wasm: meshd runs Lua only; this Wasm extension is ignored",
        ])
    }

    /// A service whose workloads are all left to sidecars (no WorkloadEntry) has no endpoints
    /// until they connect: a note saying how they register, not a warning. A service with
    /// WorkloadEntries but none for a subset still gets the warning.
    func testSubsetsOfServicesWhoseSidecarsRegisterAtRuntime() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews, namespace: shop}
        spec:
          hosts: [reviews]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: reviews}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: shop}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: ratings}}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: ratings-v1}
        spec: {address: 10.0.0.31, labels: {app: ratings, version: v1}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings}
        spec:
          host: ratings
          subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
        """
        XCTAssertEqual(findings(yaml), [
            "Info [SubsetEndpointsFromSidecars] a.yaml:10: DestinationRule/shop/reviews: spec.subsets[0]: subset \"v1\" of reviews.shop.svc.cluster.local has no WorkloadEntry; its endpoints come from sidecars registering when they connect (meshd sidecar --namespace shop --labels app=reviews,version=v1)",
            "Info [SubsetEndpointsFromSidecars] a.yaml:10: DestinationRule/shop/reviews: spec.subsets[1]: subset \"v2\" of reviews.shop.svc.cluster.local has no WorkloadEntry; its endpoints come from sidecars registering when they connect (meshd sidecar --namespace shop --labels app=reviews,version=v2)",
            "Warning [SubsetSelectsNoEndpoints] a.yaml:31: DestinationRule/default/ratings: spec.subsets[1]: subset \"v2\" selects no endpoints of ratings.default.svc.cluster.local",
        ])
    }

    /// The shipped example analyzes clean: its sidecars register at runtime.
    func testShippedBookinfoExampleHasNoWarnings() {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let store = ConfigStore.load(files: [root.appendingPathComponent("examples/bookinfo").path])
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        let findings = Analyzer.analyze(store)
        XCTAssertEqual(findings.filter { $0.severity != .info }.map(\.description), [])
        XCTAssertEqual(Set(findings.map(\.code)), ["SubsetEndpointsFromSidecars"])
    }

    func testDuplicatesConflictsAndSecurityKinds() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec: {hosts: [web.example.com], http: [{directResponse: {status: 200}}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: b}
        spec: {hosts: [web.example.com], http: [{directResponse: {status: 204}}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: b}
        spec: {hosts: [web.example.com], http: [{directResponse: {status: 202}}]}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        """
        XCTAssertEqual(findings(yaml), [
            "Warning [DuplicateResource] a.yaml:6: VirtualService/default/b: defined again at a.yaml:11; the later definition is used",
            "Warning [ConflictingMeshVirtualServiceHosts] a.yaml:11: VirtualService/default/b: spec.hosts[0]: host web.example.com is also claimed by VirtualService/default/a (a.yaml:1), which is used",
        ])
    }

    func testDestinationRuleDisablingTLSToStrictWorkloads() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews}
        spec:
          hosts: [reviews.default.svc.cluster.local]
          location: MESH_INTERNAL
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: reviews}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec: {host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}
        """
        XCTAssertEqual(findings(yaml).filter { $0.contains("ConflictingMeshTLS") }, [
            "Warning [ConflictingMeshTLS] a.yaml:16: DestinationRule/default/reviews: spec.trafficPolicy.tls.mode: DISABLE sends plaintext to reviews.default.svc.cluster.local, whose workloads a STRICT PeerAuthentication allows only mutual TLS",
        ])
        XCTAssertEqual(findings(yaml.replacingOccurrences(of: "mode: STRICT", with: "mode: PERMISSIVE"))
            .filter { $0.contains("ConflictingMeshTLS") }, [])
    }
}
