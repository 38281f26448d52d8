@testable import ControlPlane
import Foundation
import XCTest

final class MeshGraphTests: XCTestCase {
    /// Two series of reviews' sidecar (reporter destination, one over mTLS), one of
    /// productpage's (reporter source, to a service no sidecar answered), and noise.
    static func exposition(ok: Int, failed: Int, fastBucket: Int, slowBucket: Int) -> String {
        let hop = #"source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",connection_security_policy="mutual_tls""#
        return """
        # HELP istio_requests_total Requests.
        # TYPE istio_requests_total counter
        istio_requests_total{reporter="destination",\(hop),response_code="200"} \(ok)
        istio_requests_total{reporter="destination",\(hop),response_code="503"} \(failed)
        istio_requests_total{reporter="source",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="unknown",destination_service="httpbin.org",destination_service_name="httpbin.org",connection_security_policy="unknown",response_code="200"} \(ok / 2)
        istio_requests_total{reporter="source",source_workload="productpage-v1",destination_workload="reviews-v1",response_code="200"} 99
        istio_request_duration_milliseconds_bucket{reporter="destination",\(hop),response_code="200",le="5"} \(fastBucket)
        istio_request_duration_milliseconds_bucket{reporter="destination",\(hop),response_code="200",le="10"} \(slowBucket)
        istio_request_duration_milliseconds_bucket{reporter="destination",\(hop),response_code="200",le="+Inf"} \(slowBucket)
        meshd_other_total{a="x \\" y"} 7
        """
    }

    func testExpositionReaderTakesChosenFamiliesWithEscapedLabels() {
        let text = #"a_total{x="q\"uo\\te",y="new\nline"} 3 1700000000"# + "\nb_total 4\n# c_total 5\nc_total{} 6\n"
        let samples = ExpositionReader.samples(text, names: ["a_total", "c_total"])
        XCTAssertEqual(samples, [.init(name: "a_total", labels: ["x": "q\"uo\\te", "y": "new\nline"], value: 3),
                                 .init(name: "c_total", labels: [:], value: 6)])
        XCTAssertEqual(ExpositionReader.samples("a_total{x=\"open 3\n", names: ["a_total"]), [])
    }

    func testTallyKeepsServerReportsAndClientReportsNoSidecarAnswered() {
        let tally = TrafficTally(exposition: Self.exposition(ok: 10, failed: 2, fastBucket: 8, slowBucket: 10))
        XCTAssertEqual(tally.hops.count, 2)
        let reviews = tally.hops.first { $0.key.serviceName == "reviews" }!
        XCTAssertEqual(reviews.key.security, "mutual_tls")
        XCTAssertEqual(reviews.value.requests, 12)
        XCTAssertEqual(reviews.value.errors, 2)
        XCTAssertEqual(reviews.value.durationBuckets, [5: 8, 10: 10, .infinity: 10])
        XCTAssertEqual(tally.hops.first { $0.key.serviceName == "httpbin.org" }?.value.requests, 5)
    }

    func testDeltasRatesAndP99() {
        let first = TrafficTally(exposition: Self.exposition(ok: 10, failed: 0, fastBucket: 10, slowBucket: 10))
        let second = TrafficTally(exposition: Self.exposition(ok: 110, failed: 20, fastBucket: 10, slowBucket: 110))
        let delta = second.since(first)
        let reviews = delta.hops.first { $0.key.serviceName == "reviews" }!.value
        XCTAssertEqual(reviews.requests, 120)
        XCTAssertEqual(reviews.errors, 20)
        // All 100 new observations in (5, 10]: p99 is at 99 % of that bucket.
        XCTAssertEqual(reviews.quantile(0.99)!, 9.95, accuracy: 1e-9)
        // A counter that went down was reset: all of it counts.
        XCTAssertEqual(first.since(second).hops.first { $0.key.serviceName == "reviews" }!.value.requests, 10)
        // In the +Inf bucket: the highest finite bound, as histogram_quantile.
        let slow = TrafficTally.Counts(requests: 1, errors: 0, durationBuckets: [5: 0, 10: 0, .infinity: 1])
        XCTAssertEqual(slow.quantile(0.99), 10)
        XCTAssertNil(TrafficTally.Counts().quantile(0.99))

        let proxies = [MeshGraph.Proxy(id: "p", kind: "sidecar", name: "reviews-v1", namespace: "default", adminAddress: "x",
                                       syncStatus: "SYNCED", nackReason: nil, plugins: [], scrape: "ok"),
                       MeshGraph.Proxy(id: "q", kind: "sidecar", name: "idle-v1", namespace: "default", adminAddress: "y",
                                       syncStatus: "STALE", nackReason: nil, plugins: [], scrape: "pending")]
        let graph = MeshGraph.build(traffic: [(delta, 10)], proxies: proxies, scrapeInterval: 2)
        XCTAssertEqual(graph.nodes.map(\.id), ["service:httpbin.org", "service:reviews.default.svc.cluster.local",
                                               "workload:idle-v1.default", "workload:productpage-v1.default",
                                               "workload:reviews-v1.default"])
        XCTAssertEqual(graph.nodes.map(\.layer), [1, 1, 0, 0, 2])
        XCTAssertEqual(graph.windowSeconds, 10)
        let toService = graph.edges.first { $0.target == "service:reviews.default.svc.cluster.local" }!
        XCTAssertEqual(toService.requestsPerSecond, 12)
        XCTAssertEqual(toService.errorsPerSecond, 2)
        XCTAssertEqual(toService.errorRatio, 20.0 / 120, accuracy: 1e-9)
        XCTAssertEqual(toService.connectionSecurityPolicy, "mutual_tls")
        let external = graph.edges.first { $0.target == "service:httpbin.org" }!
        XCTAssertEqual(external.connectionSecurityPolicy, "unknown")
        XCTAssertEqual(external.requestsPerSecond, 5)
        XCTAssertEqual(graph.edges.count, 3, "no edge past a service no sidecar answered")
    }

    func testMixedSecurityAndCyclesEndInBoundedLayers() {
        func hop(_ s: String, _ d: String, _ security: String) -> TrafficTally.Hop {
            .init(sourceWorkload: s, sourceNamespace: "ns", service: "\(d).ns.svc.cluster.local", serviceName: d,
                  destinationWorkload: d, destinationNamespace: "ns", security: security)
        }
        let one = TrafficTally.Counts(requests: 1, errors: 0, durationBuckets: [:])
        var direct = hop("gw", "a", "mutual_tls")
        direct.service = "unknown"
        let tally = TrafficTally(hops: [hop("a", "b", "mutual_tls"): one, hop("c", "b", "none"): one, hop("b", "a", "none"): one,
                                        direct: one])
        let graph = MeshGraph.build(traffic: [(tally, 1)], proxies: [], scrapeInterval: 1)
        XCTAssertEqual(graph.edges.filter { $0.source == "workload:gw.ns" }.map(\.target), ["workload:a.ns"],
                       "an unknown service is no node: the edge goes to the workload")
        XCTAssertFalse(graph.nodes.contains { $0.id == "service:unknown" })
        XCTAssertEqual(graph.edges.first { $0.source == "service:b.ns.svc.cluster.local" }?.connectionSecurityPolicy, "mixed")
        XCTAssertTrue(graph.nodes.allSatisfy { $0.layer < graph.nodes.count })
    }

    func testPageEmbedsTheGraphSafely() {
        var graph = MeshGraph.empty(now: Date(timeIntervalSince1970: 0))
        graph.nodes = [.init(id: "workload:</script><b>x", kind: "workload", name: "</script>", namespace: "n", layer: 0)]
        let html = GraphPage.html(graph)
        XCTAssertEqual(html.components(separatedBy: "</script>").count, 3, "only the page's two scripts end")
        XCTAssertTrue(html.contains(#"\u003c\/script>"#) || html.contains(#"\u003c/script>"#))
        XCTAssertFalse(html.contains("__GRAPH_JSON__"))
    }

    func testPushMetricsUseIstiosNamesAndBuckets() {
        var m = PushMetrics()
        m.recordPush(types: ["lds", "rds"])
        m.recordPush(types: ["rds"])
        let start = DispatchTime(uptimeNanoseconds: 1_000_000_000)
        m.recordConvergence(since: start, now: DispatchTime(uptimeNanoseconds: 1_700_000_000))
        let text = m.prometheusText
        XCTAssertTrue(text.contains("pilot_xds_pushes{type=\"lds\"} 1\npilot_xds_pushes{type=\"rds\"} 2\n"), text)
        XCTAssertTrue(text.contains("pilot_proxy_convergence_time_bucket{le=\"0.5\"} 0\npilot_proxy_convergence_time_bucket{le=\"1\"} 1\n"), text)
        XCTAssertTrue(text.contains("pilot_proxy_convergence_time_count 1\n"), text)
        XCTAssertEqual(PushMetrics.type(ofResource: "plugin/default.stamp"), "ecds")
        XCTAssertEqual(PushMetrics.type(ofResource: "cluster/outbound|9080||reviews"), "cds")
    }
}
