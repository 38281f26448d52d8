import ControlPlane
import XCTest
import Transport
import LuaRuntime

/// Each bad input is refused with its file, the line of the offending field (its nearest present
/// ancestor's when it is missing), the resource and the field path.
final class BadInputTests: XCTestCase {
    private let header = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw}
    spec:
      selector: {istio: ingressgateway}
      servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
    ---

    """

    func testUnknownFieldNamesItsPathAndSuggestsTheField() {
        let yaml = header + """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: shop}
        spec:
          hosts: [reviews]
          http:
          - rout:
            - destination: {host: reviews}
        """
        XCTAssertEqual(errors(yaml, file: "vs.yaml"), [
            "vs.yaml:14: VirtualService/shop/reviews: spec.http[0].rout: unknown field \"rout\" (did you mean \"route\"?)",
            "vs.yaml:14: VirtualService/shop/reviews: spec.http[0]: one of route, redirect, directResponse or delegate is required",
        ])
    }

    func testUnknownTopLevelAndMetadataFields() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: r, labelz: {a: b}}
        spec: {host: reviews}
        extra: 1
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:3: DestinationRule/default/r: metadata.labelz: unknown field \"labelz\" (did you mean \"labels\"?)",
            "test.yaml:5: DestinationRule/default/r: extra: unknown field \"extra\"",
        ])
    }

    func testWrongTypes() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: se}
        spec:
          hosts: example.com
          ports: [{number: "80", name: http}]
          resolution: DNS
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:5: ServiceEntry/default/se: spec.hosts: wrong type: expected a list, got a string",
            "test.yaml:6: ServiceEntry/default/se: spec.ports[0].number: wrong type: expected an integer, got a string",
        ])
    }

    func testUnknownEnumValue() {
        let yaml = """
        apiVersion: networking.istio.io/v1beta1
        kind: DestinationRule
        metadata: {name: r}
        spec:
          host: reviews
          trafficPolicy: {loadBalancer: {simple: FASTEST}}
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:6: DestinationRule/default/r: spec.trafficPolicy.loadBalancer.simple: unknown value \"FASTEST\" (one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST)",
        ])
    }

    func testBadRegexes() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: [reviews]
          http:
          - match:
            - uri: {regex: "/v[0-9+"}
              headers: {x-user: {regex: "(a"}}
              queryParams: {q: {regex: "*x"}}
            route: [{destination: {host: reviews}}]
        """
        let e = errors(yaml)
        XCTAssertEqual(e.count, 3, "\(e)")
        XCTAssertTrue(e[0].hasPrefix("test.yaml:8: VirtualService/default/vs: spec.http[0].match[0].uri.regex: invalid regex \"/v[0-9+\""), e[0])
        XCTAssertTrue(e[1].hasPrefix("test.yaml:9: VirtualService/default/vs: spec.http[0].match[0].headers.x-user.regex: invalid regex"), e[1])
        XCTAssertTrue(e[2].hasPrefix("test.yaml:10: VirtualService/default/vs: spec.http[0].match[0].queryParams.q.regex: invalid regex"), e[2])
    }

    func testRegexesAreCheckedAsRE2WithTheProxiesProgramSizeLimit() {
        let long = "/api/v1/very/long/prefix/that/goes/on/and/on/for/a/while/to/exceed/the/program/size/limit"
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: [reviews]
          http:
          - match:
            - uri: {regex: "(?!/admin)/.*"}
              headers: {x-user: {regex: "(a)\\\\1"}}
              queryParams: {q: {regex: "[0-9]{1,60}"}}
            - uri: {prefix: "\(long)"}
              ignoreUriCase: true
            - uri: {regex: "(?i)/reviews/(?P<id>[0-9]+)"}
              authority: {regex: "reviews(:[0-9]+)?"}
            rewrite:
              uriRegexRewrite: {match: "[a-z]{1,80}", rewrite: "/x"}
            route: [{destination: {host: reviews}}]
        """
        let e = errors(yaml)
        func at(_ line: Int) -> String { "test.yaml:\(line): VirtualService/default/vs: spec.http[0]" }
        XCTAssertEqual(e.count, 5, "\(e)")
        XCTAssertTrue(e.contains("\(at(16)).rewrite.uriRegexRewrite.match: regex \"[a-z]{1,80}\" is too complex:"
            + " RE2 program size 163 exceeds the maximum program size of 100"), "\(e)")
        XCTAssertTrue(e.contains("\(at(8)).match[0].uri.regex: invalid regex \"(?!/admin)/.*\": invalid perl operator: (?!"
            + " (lookahead is not supported: meshd uses RE2 syntax, which matches in linear time)"), "\(e)")
        XCTAssertTrue(e.contains { $0.hasPrefix("\(at(9)).match[0].headers.x-user.regex: invalid regex \"(a)\\1\": invalid escape sequence: \\1")
            && $0.contains("backreferences are not supported") }, "\(e)")
        XCTAssertTrue(e.contains { $0.hasPrefix("\(at(10)).match[0].queryParams.q.regex: regex \"[0-9]{1,60}\" is too complex: RE2 program size ") }, "\(e)")
        XCTAssertTrue(e.contains { $0.hasPrefix("\(at(12)).match[1].ignoreUriCase: uri becomes a case-insensitive regex: regex \"(?i)")
            && $0.contains("is too complex") }, "\(e)")
    }

    /// Istio's rule: weights are non-negative and, with several destinations, not all zero;
    /// they need not add up to 100 (the proxies split in proportion).
    func testWeightsMustBeNonNegativeAndNotAllZero() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - route:
            - {destination: {host: reviews, subset: v1}, weight: 80}
            - {destination: {host: reviews, subset: v2}, weight: 30}
          - route:
            - {destination: {host: reviews, subset: v1}, weight: -10}
            - {destination: {host: reviews, subset: v2}, weight: 110}
          - route:
            - {destination: {host: reviews, subset: v1}, weight: 0}
            - {destination: {host: reviews, subset: v2}}
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:11: VirtualService/default/reviews: spec.http[1].route[0].weight: weight -10 < 0",
            "test.yaml:13: VirtualService/default/reviews: spec.http[2].route: total destination weight = 0",
        ])
    }

    func testRouteRules() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: ["*"]
          http:
          - match: [{}]
            redirect: {uri: /new}
            rewrite: {uri: /x}
          - route: [{destination: {host: a}}]
            directResponse: {status: 200}
          - match: [{uri: {}}]
            directResponse: {status: 700}
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:5: VirtualService/default/vs: spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh gateway",
            "test.yaml:9: VirtualService/default/vs: spec.http[0].rewrite: rewrite cannot be used with redirect",
            "test.yaml:7: VirtualService/default/vs: spec.http[0].match[0]: match block must not be empty",
            "test.yaml:10: VirtualService/default/vs: spec.http[1]: only one of route, redirect, directResponse or delegate may be set",
            "test.yaml:12: VirtualService/default/vs: spec.http[2].match[0].uri: one of exact, prefix, regex is required",
            "test.yaml:13: VirtualService/default/vs: spec.http[2].directResponse.status: status 700 must be in 200-599",
        ])
        XCTAssertEqual(errors("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: empty}
        spec: {hosts: []}
        """), [
            // No hosts is a delegate VirtualService, which Istio accepts; no routes it does not.
            "test.yaml:4: VirtualService/default/empty: spec: http, tcp or tls routes are required",
        ])
    }

    func testUnknownKindAndApiVersion() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: EnvoyFilter
        metadata: {name: ef, namespace: istio-system}
        spec: {}
        ---
        apiVersion: networking.istio.io/v2
        kind: VirtualService
        metadata: {name: vs}
        spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
        """
        let e = errors(yaml, file: "k.yaml")
        XCTAssertEqual(e.count, 1, "\(e)")
        // A kind meshd does not implement is skipped with a warning, not refused.
        let skipped = ConfigStore.parse(yaml: yaml, file: "k.yaml").loadWarnings.map(\.description)
        XCTAssertEqual(skipped, ["k.yaml:2: warning: EnvoyFilter/istio-system/ef: kind: EnvoyFilter is not supported (meshd proxies are not Envoy); skipped. Use a LuaPlugin or a TrafficExtension"])
        XCTAssertEqual(e[0], "k.yaml:6: VirtualService/default/vs: apiVersion: unknown apiVersion \"networking.istio.io/v2\" for VirtualService (use networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3)")
    }

    func testInvalidYAMLNamesFileAndLine() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: ok}
        spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ["*"]}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata:
          name: broken
        spec:
          hosts: [reviews
          http: []
        """
        let store = ConfigStore.parse(yaml: yaml, file: "bad.yaml")
        XCTAssertEqual(store.resources.map(\.meta.name), ["ok"])
        let e = Validator.validate(store).map(\.description)
        XCTAssertEqual(e.count, 1)
        XCTAssertTrue(e[0].hasPrefix("bad.yaml:12: invalid YAML: "), e[0])
    }

    func testMissingFiles() {
        let store = ConfigStore.load(files: ["/nonexistent/x.yaml"])
        XCTAssertEqual(Validator.validate(store).map(\.description), ["/nonexistent/x.yaml:1: cannot read file"])
        XCTAssertThrowsError(try ConfigStore.load(directory: "/nonexistent"))
    }

    func testGatewayTLSRules() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: [bookinfo.example.com]
          - port: {number: 8443, name: https2, protocol: HTTPS}
            hosts: [other/bookinfo.example.com]
            tls: {mode: SIMPLE, serverCertificate: /certs/cert.pem}
          - port: {number: 9443, name: ok, protocol: HTTPS}
            hosts: ["*"]
            tls: {mode: SIMPLE, credentialName: bookinfo-secret}
          - port: {number: 80, protocol: HTTQ}
            hosts: []
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:7: Gateway/default/gw: spec.servers[0].tls: HTTPS servers need tls settings",
            "test.yaml:11: Gateway/default/gw: spec.servers[1].tls.privateKey: privateKey is required for SIMPLE TLS (or credentialName)",
            "test.yaml:15: Gateway/default/gw: spec.servers[3].port.protocol: unknown protocol \"HTTQ\" (one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP, TLS, REDIS, MYSQL, UDP)",
            "test.yaml:16: Gateway/default/gw: spec.servers[3].hosts: at least one host is required",
        ])
    }

    func testDestinationRuleAndServiceEntryRules() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: r}
        spec:
          subsets: [{name: v1, labels: {version: v1}}, {name: v1}, {labels: {version: v3}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: se}
        spec:
          hosts: [db.internal]
          ports: [{number: 5432, name: pg, protocol: TCP}]
          resolution: STATIC
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:4: DestinationRule/default/r: spec.host: host is required",
            "test.yaml:5: DestinationRule/default/r: spec.subsets[1].name: duplicate subset names: v1",
            "test.yaml:5: DestinationRule/default/r: spec.subsets[2].name: subset name cannot be empty",
            "test.yaml:13: ServiceEntry/default/se: spec.resolution: STATIC resolution needs endpoints or a workloadSelector",
        ])
    }
}
