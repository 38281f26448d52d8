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

    func testRetryRemoteLocalitiesIsWarnedAbout() throws {
        let (routes, t) = try ratingsRoutes("""
          - retries: {attempts: 2, retryRemoteLocalities: true}
            route: [{destination: {host: ratings}}]
        """)
        XCTAssertEqual(routes[0].route?.retryPolicy?.numRetries, 2)
        XCTAssertEqual(t.warnings.count, 1)
        XCTAssertTrue(t.warnings[0].contains("retryRemoteLocalities"), t.warnings[0])
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
