import ControlPlane
import Foundation
import XCTest

/// `meshd analyze`'s analyzers, one test per message code, on inputs in the style of
/// Istio's analyzer tests (Kubernetes Services and Deployments beside Istio resources).
final class AnalyzerTests: XCTestCase {
    /// Every finding of `yaml` (read as the files' Istio resources and Kubernetes objects).
    private func analyze(_ yaml: String, secretDirectories: [String] = []) -> [Finding] {
        let store = ConfigStore.parse(yaml: yaml, file: "a.yaml")
        let inputs = Analyzer.Inputs(kubernetes: KubernetesInventory.parse(yaml: yaml, file: "a.yaml"),
                                     secretDirectories: secretDirectories)
        return Analyzer.report(store, inputs: inputs)
    }

    private func findings(_ yaml: String, _ code: String, secretDirectories: [String] = []) -> [String] {
        analyze(yaml, secretDirectories: secretDirectories).filter { $0.code == code }.map(\.description)
    }

    static let reviewsKubernetes = """
    apiVersion: v1
    kind: Service
    metadata: {name: reviews, namespace: default}
    spec:
      selector: {app: reviews}
      ports:
      - {name: http, port: 9080, targetPort: 9080}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: reviews-v1}
    spec:
      selector: {matchLabels: {app: reviews, version: v1}}
      template:
        metadata: {labels: {app: reviews, version: v1}}
        spec: {containers: [{name: reviews, image: reviews}]}
    """

    func testIST0101ReferencedResourceNotFound() {
        let yaml = Self.reviewsKubernetes + """

        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}]
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
            mirror: {host: nothere-mirror}
          - route: [{destination: {host: nothere}}]
          - route: [{destination: {host: reviews, port: {number: 9999}}}]
        """
        XCTAssertEqual(findings(yaml, "IST0101"), [
            "Error [IST0101] (VirtualService default/reviews a.yaml:30) Referenced gateway not found: \"missing-gateway\"",
            "Error [IST0101] (VirtualService default/reviews a.yaml:34) Referenced host+subset in destinationrule not found: \"reviews+v2\"",
            "Error [IST0101] (VirtualService default/reviews a.yaml:35) Referenced mirror host not found: \"nothere-mirror\"",
            "Error [IST0101] (VirtualService default/reviews a.yaml:36) Referenced host not found: \"nothere\"",
            "Error [IST0101] (VirtualService default/reviews a.yaml:37) Referenced host:port not found: \"reviews:9999\"",
        ])
    }

    func testIST0101HostNotExportedToTheVirtualServicesNamespace() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: api, namespace: team-a}
        spec:
          hosts: [api.example.com]
          addresses: [240.0.0.1]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: DNS
          exportTo: ["."]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: api, namespace: team-b}
        spec:
          hosts: [api.example.com]
          http: [{route: [{destination: {host: api.example.com}}]}]
        """
        XCTAssertEqual(findings(yaml, "IST0101"), [
            "Error [IST0101] (VirtualService team-b/api a.yaml:16) Referenced host not found: \"api.example.com\"",
        ])
        XCTAssertEqual(findings(yaml.replacingOccurrences(of: "exportTo: [\".\"]", with: "exportTo: [team-b]"), "IST0101"), [])
    }

    func testIST0106SchemaValidationError() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: bad}
        spec:
          hosts: [b@d]
          http: [{route: [{destination: {host: r}}]}]
        """
        XCTAssertEqual(findings(yaml, "IST0106"), [
            "Error [IST0106] (VirtualService default/bad a.yaml:5) Schema validation error: spec.hosts[0]: host \"b@d\" is not a valid DNS name",
        ])
    }

    func testIST0109ConflictingMeshGatewayVirtualServiceHosts() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec: {hosts: [web.example.com], http: [{directResponse: {status: 200}}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: b, namespace: other}
        spec: {hosts: [web.example.com], http: [{directResponse: {status: 204}}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: c, namespace: private}
        spec: {hosts: [web.example.com], exportTo: ["."], http: [{directResponse: {status: 204}}]}
        """
        let text = "associated with mesh gateway define the same host web.example.com which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."
        XCTAssertEqual(findings(yaml, "IST0109"), [
            "Error [IST0109] (VirtualService default/a a.yaml:3) The VirtualServices default/a,other/b,private/c " + text,
            "Error [IST0109] (VirtualService other/b a.yaml:8) The VirtualServices default/a,other/b,private/c " + text,
            "Error [IST0109] (VirtualService private/c a.yaml:13) The VirtualServices default/a,other/b,private/c " + text,
        ])
        // Two VirtualServices each visible only in its own namespace do not conflict.
        let scoped = yaml.replacingOccurrences(of: "spec: {hosts: [web.example.com], http", with: "spec: {hosts: [web.example.com], exportTo: [\".\"], http")
        XCTAssertEqual(findings(scoped, "IST0109"), [])
    }

    func testIST0110AndIST0111SidecarSelectors() {
        let yaml = Self.reviewsKubernetes + """

        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: s1}
        spec: {workloadSelector: {labels: {app: reviews}}, egress: [{hosts: ["./*"]}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: s2}
        spec: {workloadSelector: {labels: {version: v1}}, egress: [{hosts: ["./*"]}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: s3}
        spec: {workloadSelector: {labels: {app: nobody}}, egress: [{hosts: ["./*"]}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: n1}
        spec: {egress: [{hosts: ["./*"]}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: n2}
        spec: {egress: [{hosts: ["./*"]}]}
        """
        XCTAssertEqual(findings(yaml, "IST0110"), [
            "Error [IST0110] (Sidecar default/s1 a.yaml:21) The Sidecars [s1 s2] in namespace \"default\" select the same workload pod \"default/reviews-v1\", which can lead to undefined behavior.",
            "Error [IST0110] (Sidecar default/s2 a.yaml:26) The Sidecars [s1 s2] in namespace \"default\" select the same workload pod \"default/reviews-v1\", which can lead to undefined behavior.",
        ])
        XCTAssertEqual(findings(yaml, "IST0101"), [
            "Error [IST0101] (Sidecar default/s3 a.yaml:31) Referenced selector not found: \"app=nobody\"",
        ])
        XCTAssertEqual(findings(yaml, "IST0111").count, 2)
    }

    func testIST0112PortRequiredForServicesWithSeveralPorts() {
        let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports: [{name: http, port: 80}, {name: http-admin, port: 8080}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web}
        spec:
          hosts: [web]
          http: [{route: [{destination: {host: web}}]}]
        """
        XCTAssertEqual(findings(yaml, "IST0112"), [
            "Error [IST0112] (VirtualService default/web a.yaml:13) This VirtualService routes to a service \"web\" that exposes multiple ports [80 8080]. Specifying a port in the destination is required to disambiguate.",
        ])
    }

    func testIST0113StrictPeerAuthenticationAndDestinationRuleDisablingTLS() {
        let yaml = Self.reviewsKubernetes + """

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
        XCTAssertEqual(findings(yaml, "IST0113"), [
            "Error [IST0113] (DestinationRule default/reviews a.yaml:26) A DestinationRule and Policy are in conflict with regards to mTLS for host reviews.default.svc.cluster.local. The DestinationRule \"default/reviews\" specifies that mTLS must be false but the Policy object \"istio-system/default\" specifies STRICT.",
        ])
        XCTAssertEqual(findings(yaml.replacingOccurrences(of: "mode: STRICT", with: "mode: PERMISSIVE"), "IST0113"), [])
    }

    func testIST0118PortNames() {
        let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports:
          - {name: http-web, port: 80}
          - {name: foo, port: 8080, targetPort: 9090}
          - {name: bar, port: 8081, appProtocol: grpc}
          - {name: dns, port: 53}
          - {name: metrics, port: 9090, protocol: UDP}
        """
        XCTAssertEqual(findings(yaml, "IST0118"), [
            "Info [IST0118] (Service default/web a.yaml:8) Port name foo (port: 8080, targetPort: 9090) doesn't follow the naming convention of Istio port.",
        ])
    }

    func testIST0127PolicySelectorsThatSelectNoWorkload() {
        let yaml = Self.reviewsKubernetes + """

        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-reviews}
        spec: {selector: {matchLabels: {app: reviews}}, action: ALLOW, rules: [{}]}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-ghost}
        spec: {selector: {matchLabels: {app: ghost}}, action: ALLOW, rules: [{}]}
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: other}
        spec: {selector: {matchLabels: {app: reviews}}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: strict, namespace: istio-system}
        spec: {selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}
        """
        XCTAssertEqual(findings(yaml, "IST0127"), [
            "Warning [IST0127] (AuthorizationPolicy default/allow-ghost a.yaml:26) No matching workloads for this resource with the following labels: app=ghost",
            "Warning [IST0127] (RequestAuthentication other/jwt a.yaml:31) No matching workloads for this resource with the following labels: app=reviews",
        ])
    }

    func testIST0128AndIST0129UnverifiedUpstreamTLS() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: db-tls}
        spec:
          host: db.example.com
          trafficPolicy:
            tls: {mode: SIMPLE}
            portLevelSettings:
            - port: {number: 443}
              tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}
            - port: {number: 8443}
              tls: {mode: SIMPLE, caCertificates: /ca.pem}
        """
        XCTAssertEqual(findings(yaml, "IST0128"), [
            "Warning [IST0128] (DestinationRule default/db-tls a.yaml:7) DestinationRule default/db-tls in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: db.example.com",
        ])
        XCTAssertEqual(findings(yaml, "IST0129"), [
            "Warning [IST0129] (DestinationRule default/db-tls a.yaml:10) DestinationRule default/db-tls in namespace default has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: db.example.com at port number:443",
        ])
    }

    func testIST0130AndIST0131UnreachableRulesAndMatches() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web}
        spec:
          hosts: [web.example.com]
          http:
          - name: first
            match: [{uri: {prefix: /api}}, {uri: {exact: /}}]
            directResponse: {status: 200}
          - name: second
            match: [{name: again, uri: {prefix: /api}}, {uri: {prefix: /b}}]
            directResponse: {status: 201}
          - match: [{uri: {exact: /}}]
            directResponse: {status: 202}
          - directResponse: {status: 203}
          - directResponse: {status: 204}
        """
        XCTAssertEqual(findings(yaml, "IST0131"), [
            "Info [IST0131] (VirtualService default/web a.yaml:11) VirtualService rule \"second\" match \"again\" is not used (duplicate/overlapping match in rule \"first\").",
            "Info [IST0131] (VirtualService default/web a.yaml:13) VirtualService rule #2 match #0 is not used (duplicate/overlapping match in rule \"first\").",
        ])
        XCTAssertEqual(findings(yaml, "IST0130"), [
            "Warning [IST0130] (VirtualService default/web a.yaml:13) VirtualService rule #2 not used (all matches used by prior rules).",
            "Warning [IST0130] (VirtualService default/web a.yaml:16) VirtualService rule #4 not used (only the last rule can have no matches).",
        ])
    }

    static let ingressKubernetes = """
    apiVersion: v1
    kind: Service
    metadata: {name: istio-ingressgateway, namespace: istio-system}
    spec:
      selector: {istio: ingressgateway}
      ports:
      - {name: http2, port: 80, targetPort: 8080}
      - {name: https, port: 443, targetPort: 8443}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: istio-ingressgateway, namespace: istio-system}
    spec:
      template:
        metadata: {labels: {istio: ingressgateway}}
    """

    func testIST0132AndIST0162GatewayHostsAndPorts() {
        let yaml = Self.ingressKubernetes + """

        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: web}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*.example.com"]
          - port: {number: 9999, name: http-other, protocol: HTTP}
            hosts: ["other/*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: nowhere}
        spec:
          selector: {istio: nothing}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web}
        spec:
          hosts: [web.example.org]
          gateways: [web, nowhere]
          http: [{directResponse: {status: 200}}]
        """
        XCTAssertEqual(findings(yaml, "IST0132"), [
            "Warning [IST0132] (VirtualService default/web a.yaml:40) one or more host [web.example.org] defined in VirtualService default/web not found in Gateway default/web.",
        ])
        XCTAssertEqual(findings(yaml, "IST0162"), [
            "Warning [IST0162] (Gateway default/web a.yaml:25) The gateway is listening on a target port (port 9999) that is not defined in the Service associated with its workload instances (Pod selector istio=ingressgateway). If you need to access the gateway port through the gateway Service, it will not be available.",
        ])
        XCTAssertEqual(findings(yaml, "IST0101"), [
            "Error [IST0101] (Gateway default/nowhere a.yaml:32) Referenced selector not found: \"istio=nothing\"",
        ])
        XCTAssertEqual(findings(yaml.replacingOccurrences(of: "web.example.org", with: "web.example.com"), "IST0132"), [])
    }

    func testIST0134ServiceEntryAddressesRequired() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db}
        spec:
          hosts: [db.example.com]
          ports:
          - {number: 5432, name: tcp-postgres, protocol: TCP}
          - {number: 80, name: http, protocol: HTTP}
          resolution: DNS
        """
        XCTAssertEqual(findings(yaml, "IST0134"), [
            "Warning [IST0134] (ServiceEntry default/db a.yaml:7) ServiceEntry addresses are required for this protocol.",
        ])
        XCTAssertEqual(findings(yaml.replacingOccurrences(of: "resolution: DNS", with: "resolution: DNS\n  addresses: [240.0.0.9]"), "IST0134"), [])
    }

    func testIST0145ConflictingGateways() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: a}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.example.com"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: b}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - {port: {number: 80, name: http, protocol: HTTP}, hosts: [web.example.com]}
          - {port: {number: 81, name: http2, protocol: HTTP}, hosts: [web.example.com]}
        """
        XCTAssertEqual(findings(yaml, "IST0145"), [
            "Error [IST0145] (Gateway default/a a.yaml:6) Conflict with gateways default/b (workload selector istio=ingressgateway, port 80, hosts *.example.com).",
            "Error [IST0145] (Gateway default/b a.yaml:14) Conflict with gateways default/a (workload selector istio=ingressgateway, port 80, hosts web.example.com).",
        ])
    }

    func testIST0161AndIST0101GatewayCredentials() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("analyze-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("web-cert"), bad = dir.appendingPathComponent("half-cert")
        try FileManager.default.createDirectory(at: good, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: bad, withIntermediateDirectories: true)
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".write(to: good.appendingPathComponent("tls.crt"), atomically: true, encoding: .utf8)
        try "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".write(to: good.appendingPathComponent("tls.key"), atomically: true, encoding: .utf8)
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".write(to: bad.appendingPathComponent("tls.crt"), atomically: true, encoding: .utf8)
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: web}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: [a.example.com]
            tls: {mode: SIMPLE, credentialName: web-cert}
          - port: {number: 443, name: https-b, protocol: HTTPS}
            hosts: [b.example.com]
            tls: {mode: SIMPLE, credentialName: half-cert}
          - port: {number: 443, name: https-c, protocol: HTTPS}
            hosts: [c.example.com]
            tls: {mode: SIMPLE, credentialName: no-such-cert}
          - port: {number: 443, name: https-d, protocol: HTTPS}
            hosts: [d.example.com]
            tls: {mode: SIMPLE, credentialName: k8s-cert}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: k8s-cert}
        type: kubernetes.io/tls
        data: {tls.crt: Zm9v, tls.key: YmFy}
        """
        XCTAssertEqual(findings(yaml, "IST0161", secretDirectories: [dir.path]), [
            "Error [IST0161] (Gateway default/web a.yaml:12) The credential referenced by the Gateway web in namespace default is invalid, which can cause the traffic not to work as expected. (half-cert: \(bad.path) has no readable tls.key)",
        ])
        XCTAssertEqual(findings(yaml, "IST0101", secretDirectories: [dir.path]), [
            "Error [IST0101] (Gateway default/web a.yaml:15) Referenced credentialName not found: \"no-such-cert\"",
        ])
    }

    func testIST0173AndSubsetsOfServicesWhoseSidecarsRegisterAtRuntime() {
        // Declared workloads: a subset selecting none of them is an error.
        let declared = Self.reviewsKubernetes + """

        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}, {name: v9, labels: {version: v9}}]
        """
        XCTAssertEqual(findings(declared, "IST0173"), [
            "Error [IST0173] (DestinationRule default/reviews a.yaml:23) The Subset v9 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
        ])
        // No workload declared: the sidecars register at runtime; a note says how.
        let runtime = """
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
          subsets: [{name: v1, labels: {version: v1}}]
        """
        XCTAssertEqual(analyze(runtime).map(\.description), [
            "Info [MSH0005] (DestinationRule shop/reviews a.yaml:15) subset \"v1\" of reviews.shop.svc.cluster.local has no WorkloadEntry; its endpoints come from sidecars registering when they connect (meshd sidecar --namespace shop --labels app=reviews,version=v1)",
        ])
    }

    func testIST0174UnknownDestinationRuleHost() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ghost}
        spec: {host: ghost.example.com}
        """
        XCTAssertEqual(findings(yaml, "IST0174"), [
            "Warning [IST0174] (DestinationRule default/ghost a.yaml:4) The host ghost.example.com defined in the DestinationRule does not match any services in the mesh.",
        ])
    }

    func testMeshdMessages() {
        let yaml = bookinfoRegistryYAML + """

        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: lonely}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: lonely}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: tagger}
        spec:
          targetRefs:
          - {kind: VirtualService, name: missing}
          - {kind: Service, name: ratings}
          - {kind: HTTPRoute, name: r}
          inline: "function envoy_on_request(h) end"
        ---
        apiVersion: extensions.istio.io/v1alpha1
        kind: TrafficExtension
        metadata: {name: counter}
        spec:
          targetRefs: [{kind: Service, name: reviews}]
          wasm: {url: "oci://example/counter:1"}
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: web}
        spec: {}
        """
        let codes = Set(analyze(yaml).map(\.type.name))
        XCTAssertTrue(codes.isSuperset(of: ["DuplicateResource", "UnboundGateway", "UnsupportedExtension", "UnsupportedTarget", "KindSkipped", "ReferencedResourceNotFound"]), "\(codes)")
    }

    /// The shipped example analyzes clean: its sidecars register at runtime.
    func testShippedBookinfoExampleHasNoWarnings() {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("examples/bookinfo").path
        let store = ConfigStore.load(files: [path])
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        let findings = Analyzer.report(store, inputs: Analyzer.Inputs(kubernetes: KubernetesInventory.load(files: [path])))
        XCTAssertEqual(findings.filter { $0.severity != .info }.map(\.description), [])
        XCTAssertEqual(Set(findings.map(\.type.name)), ["SubsetEndpointsFromSidecars"])
    }

    func testOutputFormats() throws {
        let f = Finding(.referencedResourceNotFound, location: SourceLocation(file: "vs.yaml", line: 12),
                        resource: "VirtualService/default/foo", path: "spec.gateways[0]", message: "Referenced gateway not found: \"bar\"")
        XCTAssertEqual(FindingFormat.log.render([f]),
                       "Error [IST0101] (VirtualService default/foo vs.yaml:12) Referenced gateway not found: \"bar\"")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(FindingFormat.json.render([f]).utf8)) as? [[String: String]])
        XCTAssertEqual(json, [[
            "code": "IST0101", "level": "Error", "origin": "VirtualService default/foo", "reference": "vs.yaml:12",
            "message": "Referenced gateway not found: \"bar\"", "path": "spec.gateways[0]",
            "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
        ]])
        XCTAssertTrue(FindingFormat.yaml.render([f]).hasPrefix("- code: IST0101\n"), FindingFormat.yaml.render([f]))
        XCTAssertEqual(FindingFormat.json.render([]), "[]")
        XCTAssertEqual(FindingFormat.yaml.render([]), "[]")
    }
}
