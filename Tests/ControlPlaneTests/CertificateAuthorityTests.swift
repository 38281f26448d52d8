@testable import ControlPlane
import Foundation
import Logging
import MeshAPI
import Transport
import XCTest

final class CertificateAuthorityTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "/meshd-ca-test-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func signer(ttl: TimeInterval = 3600) throws -> CertificateSigner {
        CertificateSigner(authority: try CertificateAuthority(stateDirectory: directory, trustDomain: "cluster.local"),
                          defaultTTL: ttl, logger: Logger(label: "test"))
    }

    private func node(_ ns: String, _ sa: String) -> Meshd_Discovery_V1_Node {
        var n = Meshd_Discovery_V1_Node()
        n.id = "sidecar~test"
        n.namespace = ns
        n.serviceAccount = sa
        return n
    }

    private func request(token: String, uri: String, key: PrivateKey? = nil) throws -> Meshd_Discovery_V1_CertificateRequest {
        var r = Meshd_Discovery_V1_CertificateRequest()
        r.csr = try CertificateSigningRequest(key: key ?? PrivateKey.generate(), uri: uri).pem
        r.token = token
        return r
    }

    func testRootIsCreatedOnceAndReloaded() throws {
        let first = try CertificateAuthority(stateDirectory: directory, trustDomain: "cluster.local")
        let again = try CertificateAuthority(stateDirectory: directory, trustDomain: "cluster.local")
        XCTAssertEqual(first.rootPEM, again.rootPEM)
        XCTAssertEqual(first.tokenKey, again.tokenKey)
        XCTAssertTrue(first.origin.hasPrefix("self-signed"))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/ca/ca-key.pem")
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
    }

    func testSignsTheTokensIdentityWithTheRequestedLifetime() throws {
        let s = try signer()
        let token = try s.token(namespace: "default", serviceAccount: "bookinfo-reviews", ttl: 600)
        let key = try PrivateKey.generate()
        var r = try request(token: token, uri: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", key: key)
        r.validitySeconds = 30
        let chain = try s.sign(r, node: node("default", "bookinfo-reviews")).get()
        XCTAssertEqual(chain.count, 1)
        let leaf = try X509Certificate(pem: chain[0])
        XCTAssertTrue(leaf.matches(key))
        XCTAssertTrue(leaf.isSigned(by: try X509Certificate(pem: s.authority.rootPEM)))
        let facts = try XCTUnwrap(leaf.facts)
        XCTAssertEqual(facts.uriSANs, ["spiffe://cluster.local/ns/default/sa/bookinfo-reviews"])
        let now = Int64(Date().timeIntervalSince1970)
        XCTAssertLessThanOrEqual(abs(facts.expiration - (now + 30)), 2)
    }

    func testForgedExpiredAndForeignTokensAreRefused() throws {
        let s = try signer()
        let good = try s.token(namespace: "default", serviceAccount: "sleep", ttl: 600)
        // Another control plane's key.
        let forged = try BootstrapToken(trustDomain: "cluster.local", namespace: "default", serviceAccount: "sleep",
                                        expires: Int64(Date().timeIntervalSince1970) + 600).signed(key: Array(repeating: 7, count: 32))
        // The payload changed to another service account, the signature kept.
        var parts = good.split(separator: ".").map(String.init)
        parts[1] = Base64URL.encode(Array(#"{"exp":9999999999,"ns":"default","sa":"admin","td":"cluster.local"}"#.utf8))
        let tampered = parts.joined(separator: ".")
        let expired = try s.token(namespace: "default", serviceAccount: "sleep", ttl: 1, now: Date().addingTimeInterval(-10))
        for (token, expected) in [(forged, "does not verify"), (tampered, "does not verify"), (expired, "expired"),
                                  ("not-a-token", "not a meshd bootstrap token")] {
            let uri = "spiffe://cluster.local/ns/default/sa/sleep"
            guard case .failure(let refusal) = s.sign(try request(token: token, uri: uri), node: node("default", "sleep")) else {
                return XCTFail("token \(token) was accepted")
            }
            XCTAssertTrue(refusal.description.contains(expected), refusal.description)
        }
    }

    func testRequestForAnotherIdentityIsRefused() throws {
        let s = try signer()
        let token = try s.token(namespace: "default", serviceAccount: "sleep", ttl: 600)
        // The CSR asks for another service account than the token proves.
        let other = s.sign(try request(token: token, uri: "spiffe://cluster.local/ns/default/sa/admin"), node: node("default", "sleep"))
        guard case .failure(let r1) = other else { return XCTFail("CSR for another SA was signed") }
        XCTAssertTrue(r1.description.contains("asks for"), r1.description)
        // The proxy registered as another identity than its token proves.
        let claimed = s.sign(try request(token: token, uri: "spiffe://cluster.local/ns/default/sa/sleep"), node: node("prod", "sleep"))
        guard case .failure(let r2) = claimed else { return XCTFail("a proxy registered as another identity got a certificate") }
        XCTAssertTrue(r2.description.contains("registered as"), r2.description)
        // Another trust domain.
        let foreign = s.sign(try request(token: token, uri: "spiffe://evil.example/ns/default/sa/sleep"), node: node("default", "sleep"))
        guard case .failure = foreign else { return XCTFail("CSR for another trust domain was signed") }
        // A token for another trust domain, even signed with this key.
        let tdToken = try BootstrapToken(trustDomain: "evil.example", namespace: "default", serviceAccount: "sleep",
                                         expires: Int64(Date().timeIntervalSince1970) + 600).signed(key: s.authority.tokenKey)
        guard case .failure = s.sign(try request(token: tdToken, uri: "spiffe://evil.example/ns/default/sa/sleep"),
                                     node: node("default", "sleep")) else { return XCTFail("foreign trust domain token accepted") }
    }

    func testPlugInCAIssuesChainsToItsRoot() throws {
        // A root and an intermediate, laid out as Istio's cacerts.
        let rootKey = try PrivateKey.generate()
        let now = Date()
        let root = try X509Certificate.issue(publicKeyOf: rootKey.pointer, subject: [("O", "Root CA")], profile: .certificateAuthority,
                                             notBefore: now, notAfter: now.addingTimeInterval(86_400), issuer: nil, selfKey: rootKey)
        let caKey = try PrivateKey.generate()
        let ca = try X509Certificate.issue(publicKeyOf: caKey.pointer, subject: [("O", "Intermediate CA")], profile: .certificateAuthority,
                                           notBefore: now, notAfter: now.addingTimeInterval(86_400), issuer: (root, rootKey))
        let cacerts = directory + "/cacerts"
        try FileManager.default.createDirectory(atPath: cacerts, withIntermediateDirectories: true)
        try ca.pem.write(toFile: cacerts + "/ca-cert.pem", atomically: true, encoding: .utf8)
        try caKey.pem.write(toFile: cacerts + "/ca-key.pem", atomically: true, encoding: .utf8)
        try root.pem.write(toFile: cacerts + "/root-cert.pem", atomically: true, encoding: .utf8)
        try (ca.pem + root.pem).write(toFile: cacerts + "/cert-chain.pem", atomically: true, encoding: .utf8)
        let s = try signer()
        XCTAssertTrue(s.authority.origin.hasPrefix("plug-in"))
        XCTAssertEqual(s.authority.rootPEM, root.pem)
        let token = try s.token(namespace: "ns1", serviceAccount: "sa1", ttl: 60)
        let chain = try s.sign(try request(token: token, uri: "spiffe://cluster.local/ns/ns1/sa/sa1"), node: node("ns1", "sa1")).get()
        XCTAssertEqual(chain.count, 2)
        XCTAssertEqual(chain[1], ca.pem)
        XCTAssertTrue(try X509Certificate(pem: chain[0]).isSigned(by: ca))
        XCTAssertFalse(try X509Certificate(pem: chain[0]).isSigned(by: root))
    }

    func testPeerAuthenticationInheritance() {
        let store = ConfigStore.parse(yaml: """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: legacy}
        spec: {mtls: {mode: PERMISSIVE}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: reviews, namespace: legacy}
        spec:
          selector: {matchLabels: {app: reviews}}
          mtls: {mode: UNSET}
          portLevelMtls: {"9080": {mode: DISABLE}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: ratings, namespace: legacy}
        spec:
          selector: {matchLabels: {app: ratings}}
          mtls: {mode: STRICT}
        """)
        func mode(_ ns: String, _ labels: [String: String], _ port: Int?) -> String {
            PeerAuthenticationPolicy.mode(namespace: ns, labels: labels, port: port, store: store).rawValue
        }
        XCTAssertEqual(mode("default", [:], 80), "STRICT")  // mesh-wide
        XCTAssertEqual(mode("legacy", ["app": "details"], 80), "PERMISSIVE")  // namespace
        XCTAssertEqual(mode("legacy", ["app": "reviews"], 9080), "DISABLE")  // port level
        XCTAssertEqual(mode("legacy", ["app": "reviews"], 80), "PERMISSIVE")  // UNSET inherits the namespace
        XCTAssertEqual(mode("legacy", ["app": "ratings"], 80), "STRICT")  // workload
        XCTAssertEqual(PeerAuthenticationPolicy.mode(namespace: "x", labels: [:], port: nil, store: ConfigStore.parse(yaml: "")).rawValue,
                       "PERMISSIVE")  // Istio's default
    }
}

/// How translation turns the mesh's identity facts into TLS: PeerAuthentication on the
/// inbound listener, auto mTLS to sidecar endpoints, DestinationRule TLS modes.
final class MeshTLSTranslationTests: XCTestCase {
    private let client = ProxyIdentity.sidecar(name: "productpage-v1", namespace: "default", labels: ["app": "productpage"],
                                               outboundPort: 15001, inboundPort: 15006, appPort: 9080)
    private let services = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews}
    spec:
      hosts: [reviews.default.svc.cluster.local]
      location: MESH_INTERNAL
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      workloadSelector: {labels: {app: reviews}}
    """

    private func cluster(_ yaml: String) throws -> MeshAPI.Cluster {
        let store = ConfigStore.parse(yaml: yaml)
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        let registry = Registry(store: store, dynamic: [
            DynamicWorkload(name: "reviews-v1", address: "127.0.0.1", ports: ["http": 16006], labels: ["app": "reviews"],
                            serviceAccount: "reviews", meshIdentity: "spiffe://cluster.local/ns/default/sa/reviews"),
        ])
        let b = Translator(store: store, registry: registry).bootstrap(for: client)
        return try XCTUnwrap(b.clusters.first { $0.name == "outbound|9080||reviews.default.svc.cluster.local" })
    }

    func testSidecarEndpointsGetAutoMTLSUnlessTheDestinationRuleSaysOtherwise() throws {
        XCTAssertEqual(try cluster(services).endpoints.map(\.meshIdentity), ["spiffe://cluster.local/ns/default/sa/reviews"])
        XCTAssertNil(try cluster(services).tls)
        func dr(_ tls: String) -> String {
            services + "\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
                + "spec: {host: reviews, trafficPolicy: {tls: \(tls)}}\n"
        }
        let disabled = try cluster(dr("{mode: DISABLE}"))
        XCTAssertEqual(disabled.endpoints.map(\.meshIdentity), [nil])
        XCTAssertNil(disabled.tls)
        let istio = try cluster(dr("{mode: ISTIO_MUTUAL, subjectAltNames: [\"spiffe://cluster.local/ns/default/sa/reviews\"]}"))
        XCTAssertEqual(istio.tls, UpstreamTLS(istioMutual: true, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/reviews"]))
        XCTAssertEqual(istio.endpoints.map(\.meshIdentity), [nil])
        let simple = try cluster(dr("{mode: SIMPLE, sni: reviews.example, subjectAltNames: [reviews.example], caCertificates: /ca.pem}"))
        XCTAssertEqual(simple.tls, UpstreamTLS(sni: "reviews.example", caCertificates: "/ca.pem", subjectAltNames: ["reviews.example"]))
        // A destination whose PeerAuthentication is DISABLE refuses TLS: auto mTLS sends it plaintext, as Istio.
        func peer(_ namespace: String, _ selector: String, _ mode: String) -> String {
            "\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: pa, namespace: \(namespace)}\n"
                + "spec: {\(selector)mtls: {mode: \(mode)}}\n"
        }
        XCTAssertEqual(try cluster(services + peer("istio-system", "", "DISABLE")).endpoints.map(\.meshIdentity), [nil])
        XCTAssertEqual(try cluster(services + peer("default", "selector: {matchLabels: {app: reviews}}, ", "DISABLE"))
            .endpoints.map(\.meshIdentity), [nil])
        XCTAssertEqual(try cluster(services + peer("default", "selector: {matchLabels: {app: other}}, ", "DISABLE"))
            .endpoints.map(\.meshIdentity), ["spiffe://cluster.local/ns/default/sa/reviews"], "another workload's policy")
        XCTAssertEqual(try cluster(services + peer("istio-system", "", "PERMISSIVE")).endpoints.map(\.meshIdentity),
                       ["spiffe://cluster.local/ns/default/sa/reviews"])
    }

    func testInboundListenerCarriesThePeerAuthenticationMode() throws {
        func inbound(_ yaml: String) -> MeshTLSMode? {
            Translator(store: ConfigStore.parse(yaml: yaml)).bootstrap(for: client).listeners.first { $0.name == "inbound" }?.meshTLS
        }
        XCTAssertEqual(inbound(services), .permissive)
        XCTAssertEqual(inbound(services + "\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                               + "metadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n"), .strict)
        XCTAssertNil(inbound(services + "\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                             + "metadata: {name: pp, namespace: default}\nspec: {selector: {matchLabels: {app: productpage}}, "
                             + "mtls: {mode: STRICT}, portLevelMtls: {\"9080\": {mode: DISABLE}}}\n"))
    }
}
