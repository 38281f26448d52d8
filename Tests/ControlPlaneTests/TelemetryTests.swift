import ControlPlane
import MeshAPI
import XCTest

/// The mesh config's telemetry settings and Telemetry resources, resolved per proxy with
/// Istio's precedence (workload > namespace > mesh), and what is refused at its line.
final class TelemetryTests: XCTestCase {
    private func mesh(_ yaml: String) throws -> MeshConfig {
        let loaded = MeshConfigFile.parse(yaml, file: "mesh.yaml")
        XCTAssertEqual(loaded.errors, [])
        return try XCTUnwrap(loaded.config)
    }

    private func telemetry(_ store: ConfigStore, _ proxy: ProxyIdentity) -> ProxyTelemetry? {
        Translator(store: store).translate(for: proxy).bootstrap.telemetry
    }

    func testWithoutMeshConfigOrTelemetryProxiesKeepTheirOwnSettings() {
        XCTAssertNil(telemetry(ConfigStore(), .sidecar(name: "a", namespace: "foo", appPort: 80)))
    }

    func testTheMeshConfigsAccessLogAndTracing() throws {
        var store = ConfigStore()
        store.meshConfig = try mesh("""
        accessLogFile: /dev/stdout
        accessLogEncoding: JSON
        defaultConfig: {tracing: {sampling: 25}}
        defaultProviders: {tracing: [otel]}
        extensionProviders:
        - name: otel
          opentelemetry: {service: observability/127.0.0.1, port: 4318}
        """)
        let t = try XCTUnwrap(telemetry(store, .sidecar(name: "a", namespace: "foo", appPort: 80)))
        XCTAssertEqual(t.accessLog, AccessLogSettings(path: "/dev/stdout", encoding: .json))
        XCTAssertEqual(t.tracing, TracingSettings(samplingPercentage: 25,
                                                  collector: OpenTelemetryProvider(service: "127.0.0.1", port: 4318)))
        // Istio's defaults: no access log (accessLogFile ""), 1 % sampling, no provider.
        store.meshConfig = try mesh("trustDomain: cluster.local\nenableTracing: true")
        let quiet = try XCTUnwrap(telemetry(store, .sidecar(name: "a", namespace: "foo", appPort: 80)))
        XCTAssertNil(quiet.accessLog)
        XCTAssertEqual(quiet.tracing, TracingSettings(samplingPercentage: 1))
        store.meshConfig = try mesh("enableTracing: false")
        XCTAssertNil(telemetry(store, .sidecar(name: "a", namespace: "foo", appPort: 80))?.tracing)
    }

    func testAnEnvoyFileAccessLogProvidersFormat() throws {
        var store = ConfigStore.parse(yaml: """
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec:
          accessLogging: [{providers: [{name: file}]}]
        """)
        store.meshConfig = try mesh("""
        extensionProviders:
        - name: file
          envoyFileAccessLog:
            path: /tmp/access.log
            logFormat: {labels: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%"}}
        """)
        let log = try XCTUnwrap(telemetry(store, .sidecar(name: "a", namespace: "foo", appPort: 80))?.accessLog)
        XCTAssertEqual(log, AccessLogSettings(path: "/tmp/access.log", encoding: .json,
                                              labels: ["code": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%"]))
    }

    /// Workload over namespace over mesh; each level overrides only what it sets.
    func testWorkloadOverNamespaceOverMesh() throws {
        let yaml = """
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec:
          accessLogging: [{providers: [{name: envoy}]}]
          tracing: [{randomSamplingPercentage: 10}]
        ---
        apiVersion: telemetry.istio.io/v1alpha1
        kind: Telemetry
        metadata: {name: quiet, namespace: foo}
        spec:
          accessLogging: [{disabled: true}]
        ---
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: errors-of-a, namespace: foo}
        spec:
          selector: {matchLabels: {app: a}}
          accessLogging: [{disabled: false, filter: {expression: "response.code >= 400"}}]
          tracing: [{randomSamplingPercentage: 100, customTags: {team: {literal: {value: blue}}}}]
        """
        let store = ConfigStore.parse(yaml: yaml)
        XCTAssertEqual(Validator.validate(store), [])
        let a = try XCTUnwrap(telemetry(store, .sidecar(name: "a", namespace: "foo", labels: ["app": "a"], appPort: 80)))
        XCTAssertEqual(a.accessLog, AccessLogSettings(path: "/dev/stdout", filter: "response.code >= 400"))
        XCTAssertEqual(a.tracing, TracingSettings(samplingPercentage: 100, customTags: ["team": .literal("blue")]))
        let b = try XCTUnwrap(telemetry(store, .sidecar(name: "b", namespace: "foo", labels: ["app": "b"], appPort: 80)))
        XCTAssertNil(b.accessLog, "the namespace turns access logs off")
        XCTAssertEqual(b.tracing?.samplingPercentage, 10, "the mesh's sampling, not a's")
        let c = try XCTUnwrap(telemetry(store, .sidecar(name: "c", namespace: "bar", labels: ["app": "a"], appPort: 80)))
        XCTAssertEqual(c.accessLog, AccessLogSettings(path: "/dev/stdout"), "a selector selects in its own namespace only")
    }

    func testUnknownProvidersAndBadExpressionsAreRefusedAtTheirLines() {
        let found = errors("""
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: bad, namespace: foo}
        spec:
          tracing:
          - providers: [{name: zipkin-nowhere}]
            randomSamplingPercentage: 101
          accessLogging:
          - filter: {expression: "response.code >= '400'"}
          - filter:
              expression: "request.size > 10"
          metrics:
          - overrides:
            - tagOverrides:
                x: {value: "request.headers['x-user']"}
                y: {value: "upstream_peer.labels['app'].value"}
        """, file: "t.yaml")
        func has(_ prefix: String) {
            XCTAssertTrue(found.contains { $0.hasPrefix(prefix) }, "\(prefix) in \(found)")
        }
        has("t.yaml:6: Telemetry/foo/bad: spec.tracing[0].providers[0].name: unknown provider \"zipkin-nowhere\"")
        has("t.yaml:7: Telemetry/foo/bad: spec.tracing[0].randomSamplingPercentage: percentage 101.0 must be in 0-100")
        has("t.yaml:9: Telemetry/foo/bad: spec.accessLogging[0].filter.expression: invalid expression: cannot compare int with string")
        has("t.yaml:11: Telemetry/foo/bad: spec.accessLogging[1].filter.expression: invalid expression: unknown or unsupported attribute \"request.size\"")
        has("t.yaml:16: Telemetry/foo/bad: spec.metrics[0].overrides[0].tagOverrides.y.value: invalid expression: unknown or unsupported attribute \"upstream_peer.labels\"")
        XCTAssertEqual(found.count, 5, "\(found)")
    }

    func testAMeshConfigFormatWithAnUnknownOperatorIsRefusedAtItsLine() {
        let loaded = MeshConfigFile.parse("""
        accessLogFile: /dev/stdout
        accessLogFormat: "%START_TIME% %NOT_AN_OPERATOR%\\n"
        """, file: "mesh.yaml")
        XCTAssertNil(loaded.config)
        XCTAssertEqual(loaded.errors.map { "\($0.location.line) \($0.path): \($0.reason)" },
                       ["2 accessLogFormat: invalid access log format: unknown or unsupported command operator %NOT_AN_OPERATOR%"])
    }

    func testFormatStringsParse() throws {
        let f = try AccessLogFormat(parsing: "[%START_TIME%] %REQ(X-ENVOY-ORIGINAL-PATH?:PATH):5% 100%% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%")
        XCTAssertEqual(f.segments, [.text("["), .command(.startTime), .text("] "),
                                    .command(.requestHeader("x-envoy-original-path", fallback: ":path", maxLength: 5)),
                                    .text(" 100% "), .command(.upstreamServiceTime)])
        XCTAssertThrowsError(try AccessLogFormat(parsing: "%START_TIME"))
        XCTAssertThrowsError(try AccessLogFormat(parsing: "%RESP(CONTENT-TYPE)%"))
        XCTAssertThrowsError(try AccessLogFormat(parsing: "%REQ()%"))
    }

    func testExpressionsParseAndEvaluate() throws {
        let e = try TelemetryExpression(parsing: "response.code >= 400 && request.headers['X-User'] == 'bob' || !connection.mtls",
                                        as: .bool)
        func run(_ code: Int, _ user: String?, mtls: Bool) -> TelemetryExpression.Value? {
            e.evaluate { a in
                switch a {
                case .responseCode: .int(code)
                case .requestHeader(let h): h == "x-user" ? user.map { .string($0) } : nil
                case .connectionMTLS: .bool(mtls)
                default: nil
                }
            }
        }
        XCTAssertEqual(run(503, "bob", mtls: true), .bool(true))
        XCTAssertEqual(run(200, "bob", mtls: true), .bool(false))
        XCTAssertEqual(run(503, "eve", mtls: false), .bool(true))
        XCTAssertEqual(run(503, nil, mtls: true), nil, "an absent header is an error, which a filter takes as false")
        XCTAssertNoThrow(try TelemetryExpression(parsing: "request.host", as: .string))
        XCTAssertThrowsError(try TelemetryExpression(parsing: "response.code", as: .bool))
        XCTAssertThrowsError(try TelemetryExpression(parsing: "response.code >= 400 garbage", as: .bool))
        XCTAssertThrowsError(try TelemetryExpression(parsing: String(repeating: "(", count: 100) + "true", as: .bool))
    }
}
