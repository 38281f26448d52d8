import ControlPlane
import MeshAPI
import XCTest

/// `--mesh-config`: Istio's MeshConfig read from a file (plain, or the istio ConfigMap), its
/// errors and warnings at their own lines, and what it changes in translation.
final class MeshConfigTests: XCTestCase {
    func testIstiosDefaultsWithoutAFile() {
        let mesh = MeshConfig()
        XCTAssertEqual(mesh.trustDomain, "cluster.local")
        XCTAssertEqual(mesh.rootNamespace, "istio-system")
        XCTAssertEqual(mesh.extensionProviders, [])
    }

    func testAPlainMeshConfigIsReadWithItsProviders() throws {
        let yaml = """
        trustDomain: example.org
        rootNamespace: mesh-root
        extensionProviders:
        - name: authz
          envoyExtAuthzHttp:
            service: ext-authz.foo.svc.cluster.local
            port: 8000
            timeout: 2s
            includeRequestHeadersInCheck: [x-ext-authz]
        - name: otel
          opentelemetry: {service: otel-collector.istio-system.svc.cluster.local, port: 4318}
        """
        let loaded = MeshConfigFile.parse(yaml, file: "mesh.yaml")
        XCTAssertEqual(loaded.errors, [])
        let mesh = try XCTUnwrap(loaded.config)
        XCTAssertEqual(mesh.trustDomain, "example.org")
        XCTAssertEqual(mesh.rootNamespace, "mesh-root")
        guard case .envoyExtAuthzHttp(let authz)? = mesh.provider(named: "authz")?.kind else {
            return XCTFail("authz is an envoyExtAuthzHttp provider: \(String(describing: mesh.provider(named: "authz")))")
        }
        XCTAssertEqual(authz.port, 8000)
        XCTAssertEqual(authz.timeoutMs, 2000)
        XCTAssertEqual(authz.includeRequestHeadersInCheck, ["x-ext-authz"])
        guard case .opentelemetry(let otel)? = mesh.provider(named: "otel")?.kind else { return XCTFail("otel provider") }
        XCTAssertEqual(otel.port, 4318)
    }

    func testTheIstioConfigMapFormCountsLinesFromTheFile() throws {
        let yaml = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: istio, namespace: istio-system}
        data:
          mesh: |-
            rootNamespace: other
            enableAutoMtls: true
            trustDomin: x
        """
        let loaded = MeshConfigFile.parse(yaml, file: "istio-cm.yaml")
        XCTAssertNil(loaded.config, "an unknown field makes the file unusable, as it makes istiod fail")
        XCTAssertEqual(loaded.errors.map(\.description),
                       [#"istio-cm.yaml:8: MeshConfig: trustDomin: unknown field "trustDomin" (did you mean "trustDomain"?)"#])
        let good = MeshConfigFile.parse(yaml.replacingOccurrences(of: "trustDomin: x", with: ""), file: "istio-cm.yaml")
        XCTAssertEqual(good.config?.rootNamespace, "other")
        XCTAssertEqual(good.warnings.map(\.description),
                       ["istio-cm.yaml:7: warning: MeshConfig: enableAutoMtls: auto mTLS is always on for sidecars that have a mesh identity; ignored"])
    }

    func testFieldsMeshdDoesNotEnforceAreWarnedAtTheirLines() {
        let yaml = """
        trustDomain: cluster.local
        defaultConfig:
          concurrency: 2
          tracing: {sampling: 10}
        accessLogFormat: "[%START_TIME%]"
        extensionProviders:
        - name: dd
          datadog: {service: dd.local, port: 8126}
        - name: prom
          prometheus: {}
        """
        let loaded = MeshConfigFile.parse(yaml, file: "m.yaml")
        XCTAssertEqual(loaded.errors, [])
        let warned = loaded.warnings.map { "\($0.location.line) \($0.path)" }
        XCTAssertEqual(warned, ["3 defaultConfig.concurrency", "8 extensionProviders[0].datadog"],
                       "one warning per unenforced subtree; enforced fields (trustDomain, tracing.sampling, accessLogFormat, prometheus) are quiet")
    }

    func testBadValuesAreRefusedWithTheirPath() {
        let loaded = MeshConfigFile.parse("""
        outboundTrafficPolicy: {mode: SOMETIMES}
        extensionProviders:
        - name: a
          envoyExtAuthzHttp: {service: a.local, port: 70000}
          zipkin: {service: z.local, port: 9411}
        """, file: "m.yaml")
        XCTAssertNil(loaded.config)
        let reasons = loaded.errors.map { "\($0.location.line) \($0.path): \($0.reason)" }
        XCTAssertTrue(reasons.contains { $0.hasPrefix("1 outboundTrafficPolicy.mode: unknown value \"SOMETIMES\"") }, "\(reasons)")
        XCTAssertTrue(reasons.contains("4 extensionProviders[0].envoyExtAuthzHttp.port: port must be in 1..65535"), "\(reasons)")
        XCTAssertTrue(reasons.contains("3 extensionProviders[0]: an extension provider has exactly one provider, got 2"), "\(reasons)")
        XCTAssertEqual(MeshConfigFile.parse("[1, 2]", file: "m.yaml").errors.map(\.reason), ["the mesh config must be a map"])
        XCTAssertEqual(MeshConfigFile.load(path: "/nonexistent/mesh.yaml").errors.map(\.reason), ["cannot read the mesh config file"])
    }

    /// The root namespace decides which PeerAuthentication, Sidecar and policies are mesh-wide.
    func testTheRootNamespaceScopesMeshWidePolicies() throws {
        let yaml = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: mesh-root}
        spec:
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
        """
        let proxy = ProxyIdentity.sidecar(name: "x", namespace: "baz", appPort: 80)
        var store = ConfigStore.parse(yaml: yaml)
        let before = Translator(store: store).translate(for: proxy).bootstrap.listeners.first { $0.name == "inbound" }
        XCTAssertNil(before?.securityFilters, "mesh-root is an ordinary namespace under Istio's default root")
        store.meshConfig = try XCTUnwrap(MeshConfigFile.parse("rootNamespace: mesh-root", file: "m.yaml").config)
        let after = Translator(store: store).translate(for: proxy).bootstrap.listeners.first { $0.name == "inbound" }
        XCTAssertEqual(after?.securityFilters?.map(\.name), ["meshd.rbac"])
    }

    /// A CUSTOM policy's provider becomes the RBAC filter's external authorizer, with a
    /// cluster for its service; one the mesh config lacks is announced and denies (Istio).
    func testACustomPolicysProviderComesFromTheMeshConfig() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: ext-authz, namespace: foo}
        spec:
          hosts: [ext-authz.foo.svc.cluster.local]
          ports: [{number: 8000, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 127.0.0.1}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ext, namespace: foo}
        spec:
          action: CUSTOM
          provider: {name: authz}
          rules: [{to: [{operation: {paths: ["/headers"]}}]}]
        """
        let proxy = ProxyIdentity.sidecar(name: "x", namespace: "foo", appPort: 80)
        var store = ConfigStore.parse(yaml: yaml)
        let unknown = Translator(store: store).translate(for: proxy)
        XCTAssertTrue(unknown.warnings.contains { $0.contains("no extension provider \"authz\"") }, "\(unknown.warnings)")
        store.meshConfig = try XCTUnwrap(MeshConfigFile.parse("""
        extensionProviders:
        - name: authz
          envoyExtAuthzHttp: {service: foo/ext-authz.foo.svc.cluster.local, port: 8000, timeout: 2s, failOpen: true,
                              statusOnError: "503", headersToUpstreamOnAllow: [x-user],
                              includeRequestBodyInCheck: {maxRequestBytes: 1024, allowPartialMessage: true}}
        """, file: "m.yaml").config)
        let t = Translator(store: store).translate(for: proxy)
        XCTAssertFalse(t.warnings.contains { $0.contains("authz") }, "\(t.warnings)")
        let rbac = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "inbound" }?.securityFilters?.first { $0.name == "meshd.rbac" })
        let cluster = "outbound|8000||ext-authz.foo.svc.cluster.local"
        XCTAssertEqual(rbac.config?["providers"]?["authz"], .object([
            "cluster": .string(cluster), "timeoutMs": .number(2000), "failOpen": .bool(true), "statusOnError": .number(503),
            "headersToUpstreamOnAllow": .array([.string("x-user")]),
            "includeRequestBodyInCheck": .object(["maxRequestBytes": .number(1024), "allowPartialMessage": .bool(true),
                                                  "packAsBytes": .bool(false)]),
        ]))
        XCTAssertEqual(rbac.config?["policies"]?.arrayValue?.first?["provider"], .string("authz"))
        XCTAssertEqual(t.bootstrap.clusters.first { $0.name == cluster }?.endpoints.map(\.port), [8000])
    }
}

/// outboundTrafficPolicy: Istio's last virtual host of a sidecar's outbound routes.
final class OutboundTrafficPolicyTests: XCTestCase {
    private let proxy = ProxyIdentity.sidecar(name: "sleep-1", namespace: "default", labels: ["app": "sleep"], appPort: 80)

    private func lastVirtualHost(_ store: ConfigStore) -> VirtualHost? {
        Translator(store: store).bootstrap(for: proxy).routeConfigs.first { $0.name == "outbound" }?.virtualHosts.last
    }

    func testAllowAnyByDefaultPassesUnknownHostsThrough() throws {
        let store = ConfigStore.parse(yaml: "")
        let vhost = try XCTUnwrap(lastVirtualHost(store))
        XCTAssertEqual(vhost.name, "allow_any")
        XCTAssertEqual(vhost.domains, ["*"])
        XCTAssertEqual(vhost.routes.first?.route?.cluster, "PassthroughCluster")
        XCTAssertEqual(vhost.routes.first?.route?.timeoutMs, 0, "Istio disables the timeout of passthrough traffic")
        let b = Translator(store: store).bootstrap(for: proxy)
        XCTAssertEqual(b.clusters.first { $0.name == "PassthroughCluster" }?.originalDestination, true)
        assertSnapshotBuilds(b)
    }

    func testRegistryOnlyAnswers502AndASidecarResourceOverridesTheMesh() throws {
        var store = ConfigStore.parse(yaml: "")
        store.meshConfig = try XCTUnwrap(MeshConfigFile.parse("outboundTrafficPolicy: {mode: REGISTRY_ONLY}", file: "m").config)
        let blocked = try XCTUnwrap(lastVirtualHost(store))
        XCTAssertEqual(blocked.name, "block_all")
        XCTAssertEqual(blocked.routes.first?.directResponse?.status, 502)
        XCTAssertNil(Translator(store: store).bootstrap(for: proxy).clusters.first { $0.name == "PassthroughCluster" })

        var withSidecar = ConfigStore.parse(yaml: """
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: default}
        spec:
          outboundTrafficPolicy:
            mode: ALLOW_ANY
            egressProxy: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}
        """)
        withSidecar.meshConfig = store.meshConfig
        let egress = try XCTUnwrap(lastVirtualHost(withSidecar))
        XCTAssertEqual(egress.name, "allow_any")
        XCTAssertEqual(egress.routes.first?.route?.cluster, "outbound|80||istio-egressgateway.istio-system.svc.cluster.local")
    }
}
