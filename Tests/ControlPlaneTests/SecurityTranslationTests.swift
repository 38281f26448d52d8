import ControlPlane
import FilterHost
import Filters
import MeshAPI
import XCTest

/// RequestAuthentication and AuthorizationPolicy → `meshd.jwt_authn` and `meshd.rbac` on a
/// sidecar's inbound listener and on gateway listeners, scoped as in Istio.
final class SecurityTranslationTests: XCTestCase {
    private let httpbin = ProxyIdentity.sidecar(name: "httpbin-1", namespace: "foo", labels: ["app": "httpbin", "version": "v1"],
                                                appPort: 8000)

    private let jwks = #"{"keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#

    /// Istio's AuthorizationPolicy reference example, with a RequestAuthentication beside it.
    private var yaml: String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: httpbin, namespace: foo}
        spec:
          selector:
            matchLabels: {app: httpbin, version: v1}
          action: ALLOW
          rules:
          - from:
            - source:
                principals: ["cluster.local/ns/default/sa/sleep"]
            - source:
                namespaces: ["dev"]
            to:
            - operation:
                methods: ["GET"]
            when:
            - key: request.auth.claims[iss]
              values: ["https://accounts.google.com"]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: istio-system}
        spec:
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: other-ns, namespace: bar}
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: other-app, namespace: foo}
        spec: {selector: {matchLabels: {app: productpage}}}
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: foo}
        spec:
          selector: {matchLabels: {app: httpbin}}
          jwtRules:
          - issuer: https://accounts.google.com
            jwks: '\(jwks)'
            audiences: [httpbin]
            fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
            outputClaimToHeaders: [{header: x-sub, claim: sub}]
        """
    }

    func testPoliciesInScopeBecomeTheInboundFiltersInIstiosOrder() throws {
        let t = Translator(store: ConfigStore.parse(yaml: yaml)).translate(for: httpbin)
        XCTAssertEqual(t.warnings, [])
        let inbound = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "inbound" })
        XCTAssertEqual(inbound.securityFilters?.map(\.name), ["meshd.jwt_authn", "meshd.rbac"])
        let rbac = try XCTUnwrap(inbound.securityFilters?[1].config)
        XCTAssertEqual(rbac["destinationPort"], .number(8000))
        XCTAssertEqual(rbac["remoteFromForwardedFor"], .bool(true))
        let names = rbac["policies"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        XCTAssertEqual(names.map(Set.init), ["foo.httpbin", "istio-system.deny-admin"], "other namespaces and selectors are out of scope")
        let provider = inbound.securityFilters?[0].config?["providers"]?.arrayValue?.first
        XCTAssertEqual(provider?["issuer"], .string("https://accounts.google.com"))
        XCTAssertEqual(provider?["audiences"], .array([.string("httpbin")]))
        XCTAssertEqual(t.bootstrap.listeners.first { $0.name == "outbound" }?.securityFilters, nil, "client side has none")
        assertSnapshotBuilds(t.bootstrap)
    }

    func testAWorkloadNoPolicySelectsHasNoSecurityFilters() throws {
        let other = ProxyIdentity.sidecar(name: "x", namespace: "baz", appPort: 80)
        let store = ConfigStore.parse(yaml: yaml)
        let inbound = Translator(store: store).translate(for: other).bootstrap.listeners.first { $0.name == "inbound" }
        // Only the mesh-wide DENY policy applies.
        XCTAssertEqual(inbound?.securityFilters?.map(\.name), ["meshd.rbac"])
        XCTAssertEqual(inbound?.securityFilters?.first?.config?["policies"]?.arrayValue?.count, 1)
        let empty = Translator(store: ConfigStore.parse(yaml: "")).translate(for: other).bootstrap
        XCTAssertNil(empty.listeners.first { $0.name == "inbound" }?.securityFilters)
    }

    func testGatewaysBySelectorAndByTargetRef() throws {
        let gw = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: web, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: by-target, namespace: istio-system}
        spec:
          targetRefs: [{kind: Gateway, group: networking.istio.io, name: web}]
          action: DENY
          rules: [{from: [{source: {ipBlocks: [203.0.113.0/24]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: waypoint, namespace: istio-system}
        spec:
          targetRefs: [{kind: Service, name: web}]
          action: DENY
          rules: [{}]
        """
        let proxy = ProxyIdentity.gateway(name: "ingress", namespace: "istio-system", labels: ["istio": "ingressgateway"])
        let t = Translator(store: ConfigStore.parse(yaml: gw)).translate(for: proxy)
        let listener = try XCTUnwrap(t.bootstrap.listeners.first)
        XCTAssertEqual(listener.securityFilters?.map(\.name), ["meshd.rbac"])
        XCTAssertEqual(listener.securityFilters?.first?.config?["policies"]?.arrayValue?.compactMap { $0["name"]?.stringValue },
                       ["istio-system.by-target"])
        XCTAssertTrue(t.warnings.contains { $0.contains("AuthorizationPolicy/istio-system/waypoint") && $0.contains("not enforced") }, "\(t.warnings)")
        assertSnapshotBuilds(t.bootstrap)
    }

    func testWhatMeshdCannotDoIsAnnouncedAndFailsClosed() throws {
        let y = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ext, namespace: foo}
        spec:
          action: CUSTOM
          provider: {name: my-authz}
          rules: [{to: [{operation: {paths: ["/ext*"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: remote, namespace: foo}
        spec:
          jwtRules: [{issuer: https://remote.example, jwksUri: https://remote.example/jwks}]
        """
        let t = Translator(store: ConfigStore.parse(yaml: y)).translate(for: httpbin)
        XCTAssertEqual(t.warnings.count, 1, "\(t.warnings)")
        XCTAssertTrue(t.warnings.contains { $0.contains("CUSTOM policy denies every request its rules match") })
        let inbound = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "inbound" })
        // The jwksUri is fetched by the proxy through a cluster of its own, over TLS.
        let jwt = inbound.securityFilters?.first?.config?["providers"]?.arrayValue?.first
        XCTAssertEqual(jwt?["jwks"], nil)
        XCTAssertEqual(jwt?["remoteJwks"], .object(["cluster": .string("outbound|443||remote.example"), "path": .string("/jwks"),
                                                    "authority": .string("remote.example")]))
        let cluster = try XCTUnwrap(t.bootstrap.clusters.first { $0.name == "outbound|443||remote.example" })
        XCTAssertEqual(cluster.tls?.sni, "remote.example")
        XCTAssertEqual(cluster.endpoints, [Endpoint(address: "remote.example", port: 443)])
        XCTAssertEqual(inbound.securityFilters?.last?.config?["policies"]?.arrayValue?.first?["action"], .string("CUSTOM"))
        assertSnapshotBuilds(t.bootstrap)
        // `meshd analyze` says the same.
        let findings = Analyzer.analyze(ConfigStore.parse(yaml: y, file: "a.yaml")).map(\.description)
        XCTAssertEqual(findings.filter { $0.contains("[MSH0002]") }.count, 1, "the CUSTOM policy without a provider; the jwksUri is fetched: \(findings)")
    }

    func testValidationRefusesWhatTheProxiesCouldNotEvaluate() {
        let y = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: bad, namespace: foo}
        spec:
          rules:
          - from: [{source: {ipBlocks: [10.0.0.0/40], notRemoteIpBlocks: [nope]}}]
            to: [{operation: {ports: [http], paths: [""]}}]
            when:
            - {key: request.size, values: ["1"]}
            - {key: destination.port, values: ["x"]}
            - {key: "request.auth.claims[a][b]", values: [v]}
            - {key: "request.headers[x-a]"}
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: bad, namespace: foo}
        spec:
          jwtRules: [{issuer: i, jwks: '{"keys":[{"kty":"oct","k":"x"}]}', fromHeaders: [{prefix: x}]}]
        """
        let found = errors(y)
        for expected in ["spec.rules[0].from[0].source.ipBlocks[0]", "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
                         "spec.rules[0].to[0].operation.ports[0]", "spec.rules[0].to[0].operation.paths[0]",
                         "spec.rules[0].when[0].key", "spec.rules[0].when[1].values[0]", "spec.rules[0].when[3]",
                         "spec.jwtRules[0].jwks", "spec.jwtRules[0].fromHeaders[0].name"] {
            XCTAssertTrue(found.contains { $0.contains(expected + ":") }, "\(expected) not in \(found)")
        }
        XCTAssertFalse(found.contains { $0.contains("when[2]") }, "nested claims are supported: \(found)")
    }
}

extension Listener {
    /// The listener's filters without `istio.stats` (first on every listener); nil when none is left.
    var securityFilters: [HTTPFilterConfig]? {
        let filters = (httpFilters ?? []).filter { $0.name != "istio.stats" }
        return filters.isEmpty ? nil : filters
    }
}
