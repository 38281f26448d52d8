import ControlPlane
import Foundation
import XCTest

/// Nothing accepted is ignored silently: fields meshd does not enforce, and kinds it skips,
/// are warnings naming the field's own line and what meshd does instead.
final class ConfigWarningTests: XCTestCase {
    func testNotEnforcedFieldsAreWarnedAtTheirOwnLineOncePerSubtree() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          trafficPolicy:
            loadBalancer:
              consistentHash: {httpHeaderName: x-user}
            connectionPool:
              tcp:
                connectTimeout: 1s
                maxConnections: 10
            outlierDetection:
              consecutive5xxErrors: 3
              interval: 10s
        """
        let store = ConfigStore.parse(yaml: yaml, file: "dr.yaml")
        XCTAssertEqual(Validator.validate(store), [])
        XCTAssertEqual(Validator.warnings(store).map(\.description), [
            "dr.yaml:8: warning: DestinationRule/default/reviews: spec.trafficPolicy.loadBalancer.consistentHash: consistent hashing is not supported yet; LEAST_REQUEST is used",
            "dr.yaml:12: warning: DestinationRule/default/reviews: spec.trafficPolicy.connectionPool.tcp.maxConnections: connection limits are not applied (only connectTimeout is)",
            "dr.yaml:13: warning: DestinationRule/default/reviews: spec.trafficPolicy.outlierDetection: outlier detection is not supported yet; no endpoint is ejected",
        ])
    }

    func testEnforcedConfigHasNoWarnings() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - name: jason
            match:
            - headers: {end-user: {exact: jason}}
              uri: {prefix: /}
            rewrite: {uri: /v2}
            timeout: 5s
            headers: {request: {set: {x-a: b}}}
            route:
            - destination: {host: reviews, subset: v2, port: {number: 9080}}
              weight: 60
            - destination: {host: reviews, subset: v1}
              weight: 40
        """
        let store = ConfigStore.parse(yaml: yaml)
        XCTAssertEqual(Validator.validate(store), [])
        XCTAssertEqual(Validator.warnings(store), [])
    }

    func testSecurityKindsAreWarnedOnceAsNotEnforced() {
        let yaml = """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec:
          mtls: {mode: STRICT}
        """
        XCTAssertEqual(Validator.warnings(ConfigStore.parse(yaml: yaml, file: "pa.yaml")).map(\.description), [
            "pa.yaml:4: warning: PeerAuthentication/istio-system/default: spec: PeerAuthentication is not enforced by meshd yet (no mesh CA): traffic between proxies is plaintext",
        ])
    }

    /// The warnings of the resources a proxy's config is made from are that proxy's (what
    /// proxy-status shows); another proxy's resources are not.
    func testTranslationCarriesTheWarningsOfTheResourcesItUses() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews, namespace: default}
        spec:
          hosts: [reviews]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: reviews}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: default}
        spec:
          hosts: [reviews]
          exportTo: ["."]
          http:
          - retries: {attempts: 3, retryRemoteLocalities: true}
            route: [{destination: {host: reviews}}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny, namespace: other}
        spec: {action: DENY, rules: [{}]}
        """
        let store = ConfigStore.parse(yaml: yaml, file: "mesh.yaml")
        let t = Translator(store: store).translate(for: .sidecar(name: "pp", namespace: "default", labels: ["app": "pp"]))
        XCTAssertEqual(t.configWarnings, [
            "mesh.yaml:17: warning: VirtualService/default/reviews: spec.http[0].retries.retryRemoteLocalities: meshd has no locality priorities: retries already go to any endpoint; ignored",
        ])
        let other = Translator(store: store).translate(for: .sidecar(name: "x", namespace: "other", labels: [:]))
        XCTAssertTrue(other.configWarnings.contains { $0.contains("AuthorizationPolicy/other/deny") }, "\(other.configWarnings)")
        XCTAssertFalse(other.configWarnings.contains { $0.contains("VirtualService/default/reviews") }, "\(other.configWarnings)")
    }

    /// A bad file is refused alone, keeping its last admitted version; the others apply;
    /// an unknown kind is skipped with a warning and blocks nothing.
    func testFileAdmissionRefusesABadFileAloneAndKeepsItsLastGoodVersion() throws {
        let dir = try temporaryDirectory(self)
        let admission = FileAdmission()
        try write(vs("a", "v1"), to: dir + "/a.yaml")
        try write(vs("b", "v1"), to: dir + "/b.yaml")
        var outcome = admission.admit(try ConfigStore.load(directory: dir))
        XCTAssertEqual(outcome.refused, [])
        XCTAssertEqual(outcome.store.virtualServices.map { $0.spec.http[0].route[0].destination?.subset }, ["v1", "v1"])

        try write(vs("a", "v2") + "  - match:\n    - uri: {regex: \"[0-9\"}\n    route: [{destination: {host: a}}]\n", to: dir + "/a.yaml")
        try write(vs("b", "v2"), to: dir + "/b.yaml")
        try write("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n", to: dir + "/deploy.yaml")
        outcome = admission.admit(try ConfigStore.load(directory: dir))
        XCTAssertEqual(outcome.refusedFiles, [dir + "/a.yaml"])
        XCTAssertEqual(outcome.refused.map(\.location.line), [10], "\(outcome.refused)")
        // a.yaml stays as last admitted (v1); b.yaml's change applies.
        XCTAssertEqual(outcome.store.virtualServices.map { "\($0.name)=\($0.spec.http[0].route[0].destination?.subset ?? "")" }, ["a=v1", "b=v2"])
        XCTAssertTrue(outcome.warnings.contains { $0.location.file == dir + "/deploy.yaml" && $0.description.contains("Kubernetes") },
                      "\(outcome.warnings)")

        // A refused file that is new has no last good version: nothing of it is served.
        try write("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: c}\nspec: {hosts: [c]}\n",
                  to: dir + "/c.yaml")
        outcome = admission.admit(try ConfigStore.load(directory: dir))
        XCTAssertEqual(outcome.refusedFiles, [dir + "/a.yaml", dir + "/c.yaml"])
        XCTAssertEqual(outcome.store.virtualServices.map(\.name), ["a", "b"])
    }

    private func vs(_ name: String, _ subset: String) -> String {
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: \(name)}
        spec:
          hosts: [\(name)]
          http:
          - route:
            - destination: {host: \(name), subset: \(subset)}

        """
    }
}
