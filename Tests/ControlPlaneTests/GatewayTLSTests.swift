@testable import ControlPlane
import FilterHost
import Filters
import Foundation
import MeshAPI
import Transport
import XCTest

/// The secret store (`<config dir>/<credentialName>/`) and the translation of Gateway server
/// TLS and DestinationRule `credentialName` from it.
final class GatewayTLSTests: XCTestCase {
    private let ingress = ProxyIdentity.gateway(name: "ingress", namespace: "istio-system", labels: ["istio": "ingressgateway"])
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "/meshd-secrets-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private struct Issued {
        let certificate: String
        let key: String
    }

    private func issue(_ names: [String], by ca: (certificate: X509Certificate, key: PrivateKey)? = nil) throws -> Issued {
        let key = try PrivateKey.generate()
        let now = Date()
        let cert = try X509Certificate.issue(publicKeyOf: key.pointer, subject: [("CN", names.first ?? "ca")],
                                             profile: ca == nil ? .certificateAuthority : .leaf(subjectAltNames: names.map { "DNS:" + $0 }),
                                             notBefore: now, notAfter: now.addingTimeInterval(3600),
                                             issuer: ca, selfKey: ca == nil ? key : nil)
        return Issued(certificate: cert.pem, key: key.pem)
    }

    private func write(_ secret: String, _ files: [String: String]) throws {
        let dir = directory + "/" + secret
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
    }

    // MARK: reading

    func testReadsTLSAndGenericKeyNamesGenericFirst() throws {
        let a = try issue(["a.example.com"]), b = try issue(["b.example.com"]), ca = try issue([])
        try write("tls-style", ["tls.crt": a.certificate, "tls.key": a.key, "ca.crt": ca.certificate])
        // Both forms present: Istio takes cert/key and cacert first.
        try write("both", ["tls.crt": a.certificate, "tls.key": a.key, "cert": b.certificate, "key": b.key,
                           "cacert": ca.certificate, "ca.crt": a.certificate])
        let reader = CredentialReader(directory: directory)
        let out = reader.read(["tls-style", "both"])
        XCTAssertEqual(out.problems, [:])
        XCTAssertEqual(out.credentials["tls-style"], TLSCredential(certificateChain: a.certificate, privateKey: a.key, caCertificates: ca.certificate))
        XCTAssertEqual(out.credentials["both"], TLSCredential(certificateChain: b.certificate, privateKey: b.key, caCertificates: ca.certificate))
    }

    func testMissingUnusableAndUnsafeNamesAreProblems() throws {
        let a = try issue(["a.example.com"]), b = try issue(["b.example.com"])
        try write("only-ca", ["ca.crt": a.certificate])
        try write("mismatch", ["tls.crt": a.certificate, "tls.key": b.key])
        let out = CredentialReader(directory: directory).read(["absent", "only-ca", "mismatch", "../etc"], caOnly: ["only-ca-as-ca"])
        XCTAssertTrue(out.problems["absent"]?.contains("secret directory \(directory)/absent not found") ?? false, "\(out.problems)")
        XCTAssertTrue(out.problems["only-ca"]?.contains("has neither cert and key nor tls.crt and tls.key") ?? false, "\(out.problems)")
        XCTAssertTrue(out.problems["mismatch"]?.contains("does not match") ?? false, "\(out.problems)")
        XCTAssertTrue(out.problems["../etc"]?.contains("is not a secret name") ?? false, "\(out.problems)")
        XCTAssertTrue(out.credentials.isEmpty)
        // A CA-only secret is fine where only a CA is needed.
        let caOnly = CredentialReader(directory: directory).read([], caOnly: ["only-ca"])
        XCTAssertEqual(caOnly.credentials["only-ca"]?.caCertificates, a.certificate)
    }

    func testAPairCaughtMidRotationKeepsTheLastGoodVersion() throws {
        let old = try issue(["a.example.com"]), new = try issue(["a.example.com"])
        try write("a", ["tls.crt": old.certificate, "tls.key": old.key])
        let reader = CredentialReader(directory: directory)
        XCTAssertEqual(reader.read(["a"]).credentials["a"]?.certificateChain, old.certificate)
        try write("a", ["tls.key": new.key])  // the certificate not yet
        let mid = reader.read(["a"])
        XCTAssertEqual(mid.credentials["a"]?.certificateChain, old.certificate)
        XCTAssertTrue(mid.problems["a"]?.contains("the last good version read keeps serving") ?? false, "\(mid.problems)")
        try write("a", ["tls.crt": new.certificate])
        let done = reader.read(["a"])
        XCTAssertEqual(done.credentials["a"], TLSCredential(certificateChain: new.certificate, privateKey: new.key))
        XCTAssertEqual(done.problems, [:])
    }

    func testSecretFilesAreInTheWatchersFingerprintButNotReadAsConfig() throws {
        let a = try issue(["a.example.com"])
        try write("a", ["tls.crt": a.certificate, "tls.key": a.key])
        let before = DirectoryWatcher.fingerprint(directory)
        XCTAssertTrue(before.contains("a/tls.crt:") && before.contains("a/tls.key:"), before)
        try write("a", ["tls.crt": try issue(["a.example.com"]).certificate + "\n"])
        XCTAssertNotEqual(DirectoryWatcher.fingerprint(directory), before)
        let store = try ConfigStore.load(directory: directory)
        XCTAssertEqual(store.resources, [])
        XCTAssertEqual(store.loadErrors, [])
    }

    // MARK: translation

    private let gateway = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: web, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 443, name: https-a, protocol: HTTPS}
            hosts: [a.example.com]
            tls: {mode: SIMPLE, credentialName: cred-a, minProtocolVersion: TLSV1_3, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, NOT-A-CIPHER]}
          - port: {number: 443, name: https-b, protocol: HTTPS}
            hosts: ["istio-system/*.b.example.com"]
            tls:
              mode: MUTUAL
              credentialName: cred-b
              subjectAltNames: [spiffe://example.com/client]
              verifyCertificateHash: ["AB:CD"]
          - port: {number: 443, name: https-c, protocol: HTTPS}
            hosts: [c.example.com]
            tls: {mode: SIMPLE, credentialName: missing}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web, namespace: istio-system}
        spec:
          hosts: [a.example.com, x.b.example.com]
          gateways: [web]
          http: [{directResponse: {status: 200}}]
        """

    /// The store as the control plane serves it: validated, with the secrets it names read.
    private func served(_ yaml: String) -> (ConfigStore, [ValidationError]) {
        var store = ConfigStore.parse(yaml: yaml, file: "gw.yaml")
        let (credentials, warnings) = CredentialReferences(store).read(with: CredentialReader(directory: directory))
        store.credentials = credentials
        return (store, warnings)
    }

    func testServersOnOnePortGetAnEntryEachPickedBySNI() throws {
        let ca = try issue([])
        let caCert = try X509Certificate(pem: ca.certificate), caKey = try PrivateKey(pem: ca.key)
        let a = try issue(["a.example.com"], by: (caCert, caKey)), b = try issue(["x.b.example.com"], by: (caCert, caKey))
        let clientCA = try issue([])
        try write("cred-a", ["tls.crt": a.certificate, "tls.key": a.key])
        try write("cred-b", ["cert": b.certificate, "key": b.key, "cacert": ca.certificate])
        try write("cred-b-cacert", ["ca.crt": clientCA.certificate])
        let (store, warnings) = served(gateway)
        // The missing secret: a warning at its field's line.
        XCTAssertEqual(warnings.map(\.description),
                       ["gw.yaml:19: warning: Gateway/istio-system/web: spec.servers[2].tls.credentialName: credentialName \"missing\": secret directory \(directory)/missing not found"])
        let t = Translator(store: store).translate(for: ingress)
        let listener = try XCTUnwrap(t.bootstrap.listeners.first)
        XCTAssertNil(listener.tls)
        let entries = try XCTUnwrap(listener.tlsByServerName)
        XCTAssertEqual(entries.map(\.serverNames), [["a.example.com"], ["*.b.example.com"]])
        XCTAssertEqual(entries[0].certificates, [CertificatePEM(certificateChain: a.certificate, privateKey: a.key)])
        XCTAssertEqual(entries[0].minProtocolVersion, .tls13)
        XCTAssertEqual(entries[0].cipherSuites, ["ECDHE-RSA-AES128-GCM-SHA256"])
        XCTAssertNil(entries[0].caCertificatesPEM)
        // MUTUAL: the CA of `<name>-cacert` wins over the one in the secret itself.
        XCTAssertEqual(entries[1].certificates, [CertificatePEM(certificateChain: b.certificate, privateKey: b.key)])
        XCTAssertEqual(entries[1].caCertificatesPEM, clientCA.certificate)
        XCTAssertNil(entries[1].requireClientCertificate)
        XCTAssertEqual(entries[1].subjectAltNames, ["spiffe://example.com/client"])
        XCTAssertEqual(entries[1].verifyCertificateHash, ["AB:CD"])
        XCTAssertTrue(t.warnings.contains("Gateway/istio-system/web: spec.servers[0].tls.cipherSuites: ignoring invalid cipher suites: NOT-A-CIPHER"), "\(t.warnings)")
        XCTAssertTrue(t.warnings.contains { $0.contains("spec.servers[2].tls.credentialName: secret \"missing\" could not be read") }, "\(t.warnings)")
        // The proxy builds the contexts (and the private keys stay out of debug dumps).
        let snapshot = try ProxySnapshot.build(t.bootstrap, version: 1, registry: FilterCatalog.registry, loadingTLS: true)
        XCTAssertNotNil(snapshot.serverTLSContexts[listener.name])
        let dumped = t.bootstrap.redactingPrivateKeys.listeners[0].tlsByServerName?.compactMap { $0.certificates?.first?.privateKey }
        XCTAssertEqual(dumped, ["[redacted]", "[redacted]"])
    }

    func testOneServerForAnyHostIsPlainTLSAndRotationChangesTheBootstrap() throws {
        let a = try issue(["a.example.com"])
        try write("cred", ["tls.crt": a.certificate, "tls.key": a.key])
        let yaml = """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: web, namespace: istio-system}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 443, name: https, protocol: HTTPS}
                hosts: ["*"]
                tls: {mode: OPTIONAL_MUTUAL, credentialName: cred, caCertificates: /etc/ca.pem}
            """
        let first = Translator(store: served(yaml).0).bootstrap(for: ingress)
        let tls = try XCTUnwrap(first.listeners.first?.tls)
        XCTAssertNil(tls.serverNames)
        XCTAssertEqual(tls.requireClientCertificate, false)
        // No CA in the secret (nor a -cacert one): the file.
        XCTAssertEqual(tls.caCertificates, "/etc/ca.pem")
        let b = try issue(["a.example.com"])
        try write("cred", ["tls.crt": b.certificate, "tls.key": b.key])
        let second = Translator(store: served(yaml).0).bootstrap(for: ingress)
        XCTAssertEqual(second.listeners.first?.tls?.certificates?.first?.certificateChain, b.certificate)
        XCTAssertNotEqual(first, second)
    }

    func testDestinationRuleCredentialNameAtGatewaysAndSelectedSidecarsOnly() throws {
        let client = try issue(["client"]), ca = try issue([])
        try write("upstream", ["tls.crt": client.certificate, "tls.key": client.key, "ca.crt": ca.certificate])
        let yaml = """
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {name: api, namespace: istio-system}
            spec:
              hosts: [api.example.com]
              ports: [{number: 443, name: https, protocol: HTTPS}]
              resolution: DNS
              location: MESH_EXTERNAL
            ---
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: api, namespace: istio-system}
            spec:
              host: api.example.com
              trafficPolicy: {tls: {mode: MUTUAL, credentialName: upstream}}
            """
        let store = served(yaml).0
        let key = ClusterKey(host: "api.example.com", port: 443, subset: "")
        let atGateway = TranslationContext(proxy: ingress, store: store, registry: Registry(store: store))
        let dr = try XCTUnwrap(store.destinationRules.first)
        let tls = try XCTUnwrap(ClusterBuilder.tls(dr.spec.trafficPolicy?.settings.tls, host: key.host, dr.id, atGateway,
                                                   credentialsApply: true))
        XCTAssertEqual(tls.certificateChainPEM, client.certificate)
        XCTAssertEqual(tls.privateKeyPEM, client.key)
        XCTAssertEqual(tls.caCertificatesPEM, ca.certificate)
        let sidecar = ProxyIdentity.sidecar(name: "s", namespace: "istio-system", labels: [:], appPort: 9080)
        let atSidecar = TranslationContext(proxy: sidecar, store: store, registry: Registry(store: store))
        let plain = try XCTUnwrap(ClusterBuilder.tls(dr.spec.trafficPolicy?.settings.tls, host: key.host, dr.id, atSidecar))
        XCTAssertNil(plain.certificateChainPEM)
        XCTAssertTrue(atSidecar.warnings.contains { $0.contains("credentialName applies at gateways") }, "\(atSidecar.warnings)")
    }
}
