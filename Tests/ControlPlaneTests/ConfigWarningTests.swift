import ControlPlane
import Foundation
import XCTest

/// Nothing accepted is ignored silently: fields meshd does not enforce, and kinds it skips,
/// are warnings naming the field's own line and what meshd does instead.
final class ConfigWarningTests: XCTestCase {
    /// Gateways proxy TCP (and MONGO, REDIS, MYSQL) and TLS PASSTHROUGH / AUTO_PASSTHROUGH: no warning for those;
    /// what is still skipped is warned at its line.
    func testGatewayServerProtocolsMeshdSkipsAreWarnedAndTheOthersAreNot() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - {port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"]}
          - {port: {number: 27017, name: mongo, protocol: MONGO}, hosts: ["*"]}
          - {port: {number: 443, name: tls, protocol: TLS}, hosts: [a.example], tls: {mode: PASSTHROUGH}}
          - {port: {number: 8443, name: https, protocol: HTTPS}, hosts: [b.example], tls: {mode: PASSTHROUGH}}
          - {port: {number: 9443, name: tls-term, protocol: TLS}, hosts: [c.example], tls: {mode: SIMPLE, credentialName: c}}
          - {port: {number: 15443, name: tls-auto, protocol: TLS}, hosts: ["*.local"], tls: {mode: AUTO_PASSTHROUGH}}
          - {port: {number: 5353, name: udp, protocol: UDP}, hosts: ["*"]}
        """
        let store = ConfigStore.parse(yaml: yaml, file: "gw.yaml")
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        let warned = Validator.warnings(store).map { "\($0.location.line) \($0.path)" }
        XCTAssertEqual(warned.filter { !$0.hasSuffix("credentialName") && !$0.hasSuffix(".tls") },
                       ["11 spec.servers[4].tls.mode", "13 spec.servers[6].port.protocol"])
    }

    func testNotEnforcedFieldsAreWarnedAtTheirOwnLineOncePerSubtree() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          trafficPolicy:
            loadBalancer:
              localityLbSetting: {enabled: true, failoverPriority: [topology.kubernetes.io/region]}
            connectionPool:
              tcp:
                connectTimeout: 1s
                maxConnectionDuration: 1h
            outlierDetection:
              consecutive5xxErrors: 3
              consecutiveErrors: 3
        """
        let store = ConfigStore.parse(yaml: yaml, file: "dr.yaml")
        XCTAssertEqual(Validator.validate(store), [])
        XCTAssertEqual(Validator.warnings(store).map(\.description), [
            "dr.yaml:8: warning: DestinationRule/default/reviews: spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority: failover by label priority is not supported; failover follows region, zone and subzone",
            "dr.yaml:12: warning: DestinationRule/default/reviews: spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration: not enforced by meshd; ignored",
            "dr.yaml:15: warning: DestinationRule/default/reviews: spec.trafficPolicy.outlierDetection.consecutiveErrors: deprecated and not applied; use consecutive5xxErrors or consecutiveGatewayErrors",
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

    /// The security kinds are enforced; only their fields meshd does not evaluate are warned.
    func testSecurityKindsWarnOnlyTheirFieldsMeshdDoesNotEnforce() {
        let yaml = """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec:
          mtls: {mode: STRICT}
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: default}
        spec:
          jwtRules:
          - issuer: issuer.example
            jwksUri: https://issuer.example/jwks
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ext, namespace: default}
        spec:
          action: CUSTOM
          provider: {name: ext-authz}
          rules: [{}]
        """
        // jwksUri is fetched and CUSTOM asks the mesh config's provider: nothing to announce.
        XCTAssertEqual(Validator.warnings(ConfigStore.parse(yaml: yaml, file: "sec.yaml")).map(\.description), [])
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
          - match: [{uri: {prefix: /}, statPrefix: reviews}]
            route: [{destination: {host: reviews}}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny, namespace: other}
        spec: {action: DENY, rules: [{from: [{source: {trustDomains: [other.example]}}]}]}
        """
        let store = ConfigStore.parse(yaml: yaml, file: "mesh.yaml")
        let t = Translator(store: store).translate(for: .sidecar(name: "pp", namespace: "default", labels: ["app": "pp"]))
        XCTAssertEqual(t.configWarnings, [
            "mesh.yaml:17: warning: VirtualService/default/reviews: spec.http[0].match[0].statPrefix: stats are not kept per match; ignored",
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

    /// Gateway server TLS from the secret store and its checks are enforced; `tlsCertificates`
    /// and `caCrl` are still warned.
    func testGatewayServerTLSFieldsAreEnforced() {
        let yaml = """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: web}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: [a.example.com]
                tls:
                  mode: MUTUAL
                  credentialName: a
                  credentialNames: [a-rsa, a-ecdsa]
                  caCertCredentialName: a-ca
                  subjectAltNames: [spiffe://example.com/client]
                  verifyCertificateSpki: [abc=]
                  verifyCertificateHash: ["ab:cd"]
                  minProtocolVersion: TLSV1_2
                  maxProtocolVersion: TLSV1_3
                  cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]
                  tlsCertificates: [{serverCertificate: /a.pem, privateKey: /a.key}]
                  caCrl: /crl.pem
            """
        XCTAssertEqual(Validator.warnings(ConfigStore.parse(yaml: yaml, file: "gw.yaml")).map(\.description), [
            "gw.yaml:20: warning: Gateway/default/web: spec.servers[0].tls.tlsCertificates: tlsCertificates are not supported: ignored (a server with no other certificate is skipped)",
            "gw.yaml:21: warning: Gateway/default/web: spec.servers[0].tls.caCrl: certificate revocation lists are not checked",
        ])
    }
}
