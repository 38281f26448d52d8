import ControlPlane
import FilterHost
import MeshAPI
import XCTest

/// Istio's `retries`, `mirror` / `mirrors` and DestinationRule `maxRetries`, translated
/// with Istio's values.
final class ResilienceTranslationTests: XCTestCase {
    private let productpage = ProxyIdentity.sidecar(name: "productpage-v1", namespace: "default",
                                                    labels: ["app": "productpage", "version": "v1"],
                                                    outboundPort: 15001, inboundPort: 15006, appPort: 9080)

    private func ratingsRoutes(_ http: String, rules: String = "") throws -> (routes: [Route], t: Translation) {
        let vs = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http:
        \(http)
        \(rules)
        """
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml"], extra: vs)
        let t = Translator(store: store).translate(for: productpage)
        _ = assertSnapshotBuilds(t.bootstrap)
        let vh = try XCTUnwrap(t.bootstrap.routeConfig("outbound")?.virtualHost(domain: "ratings"))
        return (vh.routes, t)
    }

    func testRetriesBecomeARetryPolicyOverIstiosDefault() throws {
        let (routes, t) = try ratingsRoutes("""
          - name: explicit
            match: [{uri: {prefix: /a}}]
            retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,409,503"}
            route: [{destination: {host: ratings, subset: v1}}]
          - name: attempts-only
            match: [{uri: {prefix: /b}}]
            retries: {attempts: 5}
            route: [{destination: {host: ratings, subset: v1}}]
          - name: disabled
            match: [{uri: {prefix: /c}}]
            retries: {attempts: 0}
            route: [{destination: {host: ratings, subset: v1}}]
          - name: same-host
            match: [{uri: {prefix: /d}}]
            retries: {attempts: 1, retryIgnorePreviousHosts: false, backoff: 100ms, retryOn: 5xx}
            route: [{destination: {host: ratings, subset: v1}}]
          - name: none-given
            route: [{destination: {host: ratings, subset: v1}}]
        """)
        XCTAssertEqual(routes.map { $0.name ?? "-" }, ["explicit", "attempts-only", "disabled", "same-host", "none-given"])
        XCTAssertEqual(routes[0].route?.retryPolicy, RetryPolicy(
            retryOn: "gateway-error,connect-failure,retriable-status-codes", numRetries: 3, perTryTimeoutMs: 2000,
            retriableStatusCodes: [409, 503], retryOtherHosts: true))
        var attemptsOnly = RetryPolicy.istioDefault
        attemptsOnly.numRetries = 5
        XCTAssertEqual(routes[1].route?.retryPolicy, attemptsOnly)
        XCTAssertNil(routes[2].route?.retryPolicy)
        XCTAssertEqual(routes[3].route?.retryPolicy, RetryPolicy(retryOn: "5xx", numRetries: 1, backoffBaseIntervalMs: 100,
                                                                 retryOtherHosts: false))
        XCTAssertEqual(routes[4].route?.retryPolicy, .istioDefault)
        XCTAssertEqual(t.warnings, [])
        // Envoy sends x-envoy-attempt-count on every virtual host Istio makes.
        for rc in t.bootstrap.routeConfigs {
            for vh in rc.virtualHosts { XCTAssertEqual(vh.includeRequestAttemptCount, true, vh.name) }
        }
    }

    /// Istio: Envoy's previous_priorities retry priority with update_frequency 2.
    func testRetryRemoteLocalitiesSetsPreviousPriorities() throws {
        let (routes, t) = try ratingsRoutes("""
          - retries: {attempts: 2, retryRemoteLocalities: true}
            route: [{destination: {host: ratings}}]
          - retries: {attempts: 2}
            route: [{destination: {host: ratings}}]
        """)
        XCTAssertEqual(routes[0].route?.retryPolicy?.numRetries, 2)
        XCTAssertEqual(routes[0].route?.retryPolicy?.previousPrioritiesUpdateFrequency, 2)
        XCTAssertNil(routes[1].route?.retryPolicy?.previousPrioritiesUpdateFrequency)
        XCTAssertEqual(t.warnings, [])
    }

    func testMirrorsBecomeMirrorPoliciesWithTheirShares() throws {
        let (routes, t) = try ratingsRoutes("""
          - name: one
            match: [{uri: {prefix: /one}}]
            route: [{destination: {host: ratings, subset: v1}}]
            mirror: {host: ratings, subset: v2}
          - name: share
            match: [{uri: {prefix: /share}}]
            route: [{destination: {host: ratings, subset: v1}}]
            mirror: {host: reviews}
            mirrorPercentage: {value: 12.5}
          - name: many
            route: [{destination: {host: ratings, subset: v1}}]
            mirrors:
            - destination: {host: ratings, subset: v2}
            - destination: {host: details}
              percentage: {value: 50}
        """)
        XCTAssertEqual(routes[0].route?.requestMirrorPolicies,
                       [MirrorPolicy(cluster: "outbound|9080|v2|ratings.default.svc.cluster.local", percent: 100)])
        XCTAssertEqual(routes[1].route?.requestMirrorPolicies,
                       [MirrorPolicy(cluster: "outbound|9080||reviews.default.svc.cluster.local", percent: 12.5)])
        XCTAssertEqual(routes[2].route?.requestMirrorPolicies, [
            MirrorPolicy(cluster: "outbound|9080|v2|ratings.default.svc.cluster.local", percent: 100),
            MirrorPolicy(cluster: "outbound|9080||details.default.svc.cluster.local", percent: 50),
        ])
        // The mirror clusters are built like any destination's.
        XCTAssertNotNil(t.bootstrap.cluster("outbound|9080||details.default.svc.cluster.local"))
        XCTAssertEqual(t.warnings, [])
    }

    func testMaxRetriesComesFromTheConnectionPoolElseIstiosUnboundedDefault() throws {
        let dr = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings-pool}
        spec:
          host: ratings
          trafficPolicy: {connectionPool: {http: {maxRetries: 7}}}
        """
        let store = try bookinfoStore(self, samples: [], extra: dr)
        let b = Translator(store: store).translate(for: productpage).bootstrap
        XCTAssertEqual(b.cluster("outbound|9080||ratings.default.svc.cluster.local")?.maxRetries, 7)
        XCTAssertEqual(b.cluster("outbound|9080||reviews.default.svc.cluster.local")?.maxRetries, Int(UInt32.max))
        XCTAssertNil(b.cluster("inbound|9080||")?.maxRetries)
    }
}

/// DestinationRule `connectionPool` → the cluster's circuit breakers, and the settings meshd
/// does not enforce → warnings.
final class ConnectionPoolTranslationTests: XCTestCase {
    private let productpage = ProxyIdentity.sidecar(name: "productpage-v1", namespace: "default",
                                                    labels: ["app": "productpage", "version": "v1"],
                                                    outboundPort: 15001, inboundPort: 15006, appPort: 9080)

    private func translate(_ dr: String) throws -> Translation {
        let store = try bookinfoStore(self, samples: [], extra: dr)
        let t = Translator(store: store).translate(for: productpage)
        _ = assertSnapshotBuilds(t.bootstrap)
        return t
    }

    func testConnectionPoolBecomesCircuitBreakersElseIstiosOpenDefaults() throws {
        let t = try translate("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings-pool}
        spec:
          host: ratings
          trafficPolicy:
            connectionPool:
              tcp: {maxConnections: 3, connectTimeout: 250ms, tcpKeepalive: {probes: 4, time: 30s, interval: 5s}}
              http: {http1MaxPendingRequests: 5, http2MaxRequests: 7, maxRetries: 0}
        """)
        let ratings = try XCTUnwrap(t.bootstrap.cluster("outbound|9080||ratings.default.svc.cluster.local"))
        XCTAssertEqual(ratings.maxConnections, 3)
        XCTAssertEqual(ratings.maxPendingRequests, 5)
        XCTAssertEqual(ratings.maxRequests, 7)
        XCTAssertEqual(ratings.connectTimeoutMs, 250)
        XCTAssertEqual(ratings.tcpKeepalive, TCPKeepalive(probes: 4, timeSeconds: 30, intervalSeconds: 5))
        // Istio applies a threshold only when positive.
        XCTAssertEqual(ratings.maxRetries, Int(UInt32.max))
        let open = Int(UInt32.max)
        for name in ["outbound|9080||reviews.default.svc.cluster.local", "inbound|9080||"] {
            let c = try XCTUnwrap(t.bootstrap.cluster(name))
            XCTAssertEqual([c.maxConnections, c.maxPendingRequests, c.maxRequests], [open, open, open], name)
            XCTAssertNil(c.tcpKeepalive)
        }
        XCTAssertEqual(t.warnings, [])
    }

    func testSubsetAndPortLevelPoolsOverrideTheTopLevel() throws {
        let t = try translate("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews-pool}
        spec:
          host: reviews
          trafficPolicy:
            connectionPool: {http: {http2MaxRequests: 10}}
            portLevelSettings:
            - port: {number: 9080}
              connectionPool: {http: {http2MaxRequests: 20}}
          subsets:
          - name: v1
            labels: {version: v1}
          - name: v2
            labels: {version: v2}
            trafficPolicy: {connectionPool: {http: {http2MaxRequests: 30}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - route:
            - {destination: {host: reviews, subset: v1}, weight: 50}
            - {destination: {host: reviews, subset: v2}, weight: 50}
        """)
        XCTAssertEqual(t.bootstrap.cluster("outbound|9080|v1|reviews.default.svc.cluster.local")?.maxRequests, 20)
        XCTAssertEqual(t.bootstrap.cluster("outbound|9080|v2|reviews.default.svc.cluster.local")?.maxRequests, 30)
    }

    func testSettingsMeshdDoesNotEnforceAreWarnings() throws {
        let t = try translate("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings-pool}
        spec:
          host: ratings
          trafficPolicy:
            connectionPool:
              tcp: {maxConnectionDuration: 60s, idleTimeout: 30s}
              http: {maxRequestsPerConnection: 10, maxConcurrentStreams: 50, useClientProtocol: true}
            outlierDetection: {consecutiveErrors: 3}
            loadBalancer:
              simple: ROUND_ROBIN
              localityLbSetting: {enabled: true, failoverPriority: [topology.istio.io/network]}
              warmupDurationSecs: 60s
        """)
        let warned = t.warnings.joined(separator: "\n")
        for path in ["connectionPool.tcp.maxConnectionDuration", "connectionPool.tcp.idleTimeout",
                     "connectionPool.http.maxConcurrentStreams",
                     "connectionPool.http.useClientProtocol", "outlierDetection.consecutiveErrors",
                     "loadBalancer.localityLbSetting.failoverPriority",
                     ] {
            XCTAssertTrue(warned.contains("trafficPolicy." + path + ":"), "no warning for \(path): \(warned)")
        }
        // HTTP/1.1 (ratings' port): enforced, so no warning.
        XCTAssertFalse(warned.contains("maxRequestsPerConnection"), warned)
        XCTAssertEqual(t.bootstrap.cluster("outbound|9080||ratings.default.svc.cluster.local")?.maxRequestsPerConnection, 10)
    }

    func testOutlierDetectionMapsToEnvoysConsecutiveErrorDetectors() throws {
        let t = try translate("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings-outliers}
        spec:
          host: ratings
          trafficPolicy:
            outlierDetection:
              consecutive5xxErrors: 0
              consecutiveGatewayErrors: 2
              consecutiveLocalOriginFailures: 4
              splitExternalLocalOriginErrors: true
              interval: 1s
              baseEjectionTime: 15s
              maxEjectionPercent: 50
              minHealthPercent: 30
        """)
        let ratings = try XCTUnwrap(t.bootstrap.cluster("outbound|9080||ratings.default.svc.cluster.local"))
        XCTAssertEqual(ratings.outlierDetection, OutlierDetectionConfig(
            consecutive5xx: 0, consecutiveGatewayFailure: 2, consecutiveLocalOriginFailure: 4,
            splitExternalLocalOriginErrors: true, intervalMs: 1000, baseEjectionTimeMs: 15_000,
            maxEjectionPercent: 50, minHealthPercent: 30))
        XCTAssertNil(t.bootstrap.cluster("outbound|9080||reviews.default.svc.cluster.local")?.outlierDetection)
        XCTAssertEqual(t.warnings, [])
    }
}

/// DestinationRule `loadBalancer.consistentHash` → RING_HASH / MAGLEV clusters.
final class ConsistentHashTranslationTests: XCTestCase {
    private let productpage = ProxyIdentity.sidecar(name: "productpage-v1", namespace: "default",
                                                    labels: ["app": "productpage", "version": "v1"],
                                                    outboundPort: 15001, inboundPort: 15006, appPort: 9080)

    private func cluster(_ lb: String) throws -> (Cluster?, [String]) {
        let store = try bookinfoStore(self, samples: [], extra: """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings-hash}
        spec:
          host: ratings
          trafficPolicy:
            loadBalancer: \(lb)
        """)
        let t = Translator(store: store).translate(for: productpage)
        _ = assertSnapshotBuilds(t.bootstrap)
        return (t.bootstrap.cluster("outbound|9080||ratings.default.svc.cluster.local"), t.warnings)
    }

    func testKeysAndTables() throws {
        var (c, warnings) = try cluster("{consistentHash: {httpHeaderName: x-user}}")
        XCTAssertEqual(c?.lbPolicy, .ringHash)
        XCTAssertEqual(c?.consistentHash, ConsistentHashConfig(header: "x-user"))
        XCTAssertEqual(warnings, [])

        (c, _) = try cluster("{consistentHash: {httpCookie: {name: s, path: /, ttl: 10s}, ringHash: {minimumRingSize: 2048}}}")
        XCTAssertEqual(c?.lbPolicy, .ringHash)
        XCTAssertEqual(c?.consistentHash, ConsistentHashConfig(cookie: .init(name: "s", path: "/", ttlMs: 10_000), minimumRingSize: 2048))

        (c, _) = try cluster("{consistentHash: {useSourceIp: true, minimumRingSize: 512}}")
        XCTAssertEqual(c?.consistentHash, ConsistentHashConfig(sourceIp: true, minimumRingSize: 512))

        (c, _) = try cluster("{consistentHash: {httpQueryParameterName: u, maglev: {}}}")
        XCTAssertEqual(c?.lbPolicy, .maglev)
        XCTAssertEqual(c?.consistentHash, ConsistentHashConfig(queryParameter: "u"))

        (c, _) = try cluster("{consistentHash: {httpHeaderName: x, maglev: {tableSize: 131}}}")
        XCTAssertEqual(c?.consistentHash?.maglevTableSize, 131)
    }

    func testANonPrimeMaglevTableIsRefused() throws {
        let dir = try temporaryDirectory(self)
        try write(bookinfoRegistryYAML, to: dir + "/registry.yaml")
        try write("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ratings-hash}
        spec:
          host: ratings
          trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1000}}}}
        """, to: dir + "/dr.yaml")
        let issues = Validator.validate(ConfigStore.load(files: [dir + "/registry.yaml", dir + "/dr.yaml"])).map(\.description)
        XCTAssertTrue(issues.contains { $0.contains("maglev.tableSize") && $0.contains("prime") }, "\(issues)")
    }
}
