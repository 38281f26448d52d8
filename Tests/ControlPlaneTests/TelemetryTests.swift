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
            path: /var/log/meshd/access.log
            logFormat: {labels: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%"}}
        """)
        let log = try XCTUnwrap(telemetry(store, .sidecar(name: "a", namespace: "foo", appPort: 80))?.accessLog)
        XCTAssertEqual(log, AccessLogSettings(path: "/var/log/meshd/access.log", encoding: .json,
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

    /// Istio's merge of `metrics[].overrides`: mesh, then namespace, then workload, each
    /// applied to the metrics and reporters it matches; a later `disabled` wins, tags merge.
    func testMetricOverridesMergeWorkloadOverNamespaceOverMesh() throws {
        let yaml = """
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec:
          metrics:
          - providers: [{name: prometheus}]
            overrides:
            - tagOverrides: {request_protocol: {operation: REMOVE}}
            - match: {metric: REQUEST_DURATION}
              disabled: true
        ---
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: users, namespace: foo}
        spec:
          metrics:
          - overrides:
            - match: {metric: REQUEST_COUNT, mode: SERVER}
              tagOverrides: {x_user: {value: "request.headers['x-user']"}}
        ---
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: durations-of-a, namespace: foo}
        spec:
          selector: {matchLabels: {app: a}}
          metrics:
          - overrides:
            - match: {metric: REQUEST_DURATION, mode: CLIENT}
              disabled: false
            - match: {metric: TCP_SENT_BYTES}
              disabled: true
        """
        let store = ConfigStore.parse(yaml: yaml)
        XCTAssertEqual(Validator.validate(store), [])
        func overrides(_ name: String, _ ns: String) throws -> [String: MetricOverride] {
            let t = try XCTUnwrap(telemetry(store, .sidecar(name: name, namespace: ns, labels: ["app": name], appPort: 80)))
            return Dictionary(uniqueKeysWithValues: (t.metricOverrides ?? []).map { ("\($0.metric.rawValue)/\($0.reporter.rawValue)", $0) })
        }
        let a = try overrides("a", "foo")
        XCTAssertEqual(a["REQUEST_COUNT/destination"], MetricOverride(metric: .requestCount, reporter: .destination, tags: [
            "request_protocol": .remove, "x_user": .upsert(expression: "request.headers['x-user']")]))
        XCTAssertEqual(a["REQUEST_COUNT/source"]?.tags, ["request_protocol": .remove], "the namespace's SERVER entry is one-sided")
        XCTAssertEqual(a["REQUEST_DURATION/source"]?.disabled, false, "the workload turns the client's durations back on")
        XCTAssertEqual(a["REQUEST_DURATION/destination"]?.disabled, true)
        XCTAssertNil(a.keys.first { $0.hasPrefix("TCP_") }, "TCP metrics are not overridden (warned)")
        let b = try overrides("b", "foo")
        XCTAssertEqual(b["REQUEST_DURATION/source"]?.disabled, true, "only a's selector turns them back on")
        let c = try overrides("c", "bar")
        XCTAssertNil(c["REQUEST_COUNT/destination"]?.tags["x_user"], "foo's namespace entry stays in foo")
        XCTAssertEqual(c["GRPC_REQUEST_MESSAGES/source"]?.tags, ["request_protocol": .remove], "ALL_METRICS")
        let warnings = Translator(store: store).translate(for: .sidecar(name: "a", namespace: "foo", labels: ["app": "a"], appPort: 80)).warnings
        XCTAssertTrue(warnings.contains { $0.contains("Telemetry/foo/durations-of-a: spec.metrics[0].overrides[1].match.metric: overrides of TCP metrics are not applied") }, "\(warnings)")
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
                bad-name: {operation: REMOVE}
        """, file: "t.yaml")
        func has(_ prefix: String) {
            XCTAssertTrue(found.contains { $0.hasPrefix(prefix) }, "\(prefix) in \(found)")
        }
        has("t.yaml:6: Telemetry/foo/bad: spec.tracing[0].providers[0].name: unknown provider \"zipkin-nowhere\"")
        has("t.yaml:7: Telemetry/foo/bad: spec.tracing[0].randomSamplingPercentage: percentage 101.0 must be in 0-100")
        has("t.yaml:9: Telemetry/foo/bad: spec.accessLogging[0].filter.expression: invalid expression: cannot compare int with string")
        has("t.yaml:11: Telemetry/foo/bad: spec.accessLogging[1].filter.expression: invalid expression: unknown or unsupported attribute \"request.size\"")
        has("t.yaml:16: Telemetry/foo/bad: spec.metrics[0].overrides[0].tagOverrides.y.value: invalid expression: unknown or unsupported attribute \"upstream_peer.labels\"")
        has("t.yaml:17: Telemetry/foo/bad: spec.metrics[0].overrides[0].tagOverrides.bad-name: \"bad-name\" is not a Prometheus label name")
        XCTAssertEqual(found.count, 6, "\(found)")
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
