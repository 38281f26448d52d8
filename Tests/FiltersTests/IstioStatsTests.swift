@testable import FilterHost
@testable import Filters
import Foundation
import MeshAPI
import NIOCore
import NIOEmbedded
import SwiftProtobuf
import Transport
import XCTest

final class IstioStatsTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private let reviews = WorkloadFacts(name: "reviews-v2", workload: "reviews-v2", namespace: "default",
                                        labels: ["app": "reviews", "version": "v2"], serviceAccount: "reviews",
                                        cluster: "Kubernetes")
    private let productpage = WorkloadFacts(name: "productpage-v1", workload: "productpage-v1", namespace: "web",
                                            labels: ["app": "productpage", "version": "v1"], serviceAccount: nil,
                                            cluster: "Kubernetes")

    /// The labels as a dictionary, parsed back from the series text.
    private func parse(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        let pattern = try! NSRegularExpression(pattern: #"([a-z_]+)="((?:[^"\\]|\\.)*)""#)
        for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            out[String(text[Range(m.range(at: 1), in: text)!])] = String(text[Range(m.range(at: 2), in: text)!])
        }
        return out
    }

    private func facts(_ reporter: Reporter, local: WorkloadFacts, peer: WorkloadFacts?) -> IstioRequestFacts {
        IstioRequestFacts(reporter: reporter, local: local, peer: peer,
                          destinationService: "reviews.default.svc.cluster.local", requestProtocol: "http",
                          responseCode: 200, grpcStatus: "", responseFlags: "-", connectionSecurityPolicy: "unknown")
    }

    func testSourceReporterPutsItselfOnTheSourceSide() {
        let l = parse(facts(.source, local: productpage, peer: reviews).labels())
        XCTAssertEqual(l.count, 25, "Istio's 25 standard labels")
        XCTAssertEqual(l["reporter"], "source")
        XCTAssertEqual(l["source_workload"], "productpage-v1")
        XCTAssertEqual(l["source_workload_namespace"], "web")
        XCTAssertEqual(l["source_app"], "productpage")
        XCTAssertEqual(l["source_canonical_service"], "productpage")
        XCTAssertEqual(l["source_canonical_revision"], "v1")
        XCTAssertEqual(l["destination_workload"], "reviews-v2")
        XCTAssertEqual(l["destination_version"], "v2")
        XCTAssertEqual(l["destination_service"], "reviews.default.svc.cluster.local")
        XCTAssertEqual(l["destination_service_name"], "reviews")
        XCTAssertEqual(l["destination_service_namespace"], "default")
        XCTAssertEqual(l["destination_cluster"], "Kubernetes")
        XCTAssertEqual(l["source_principal"], "unknown")
        XCTAssertEqual(l["response_code"], "200")
        XCTAssertEqual(l["grpc_response_status"], "")
        XCTAssertEqual(l["response_flags"], "-")
    }

    func testDestinationReporterWithoutPeerSaysUnknown() {
        let l = parse(facts(.destination, local: reviews, peer: nil).labels())
        XCTAssertEqual(l["reporter"], "destination")
        XCTAssertEqual(l["destination_workload"], "reviews-v2")
        XCTAssertEqual(l["destination_canonical_revision"], "v2")
        for key in ["source_workload", "source_workload_namespace", "source_app", "source_version",
                    "source_canonical_service", "source_canonical_revision", "source_cluster", "source_principal"] {
            XCTAssertEqual(l[key], "unknown", key)
        }
    }

    func testCanonicalNamesFollowIstiosLabelPrecedence() {
        var w = reviews
        w.labels = ["service.istio.io/canonical-name": "ratings", "app": "x", "version": "v9",
                    "service.istio.io/canonical-revision": "r1"]
        XCTAssertEqual(w.canonicalService, "ratings")
        XCTAssertEqual(w.canonicalRevision, "r1")
        w.labels = [:]
        XCTAssertEqual(w.canonicalService, "reviews-v2", "no label: the workload name")
        XCTAssertEqual(w.canonicalRevision, "latest")
    }

    func testPeerValuesAreEscapedAndCut() {
        var peer = reviews
        peer.workload = "a\"b\\c\nd"
        peer.namespace = String(repeating: "n", count: 1000)
        let text = facts(.destination, local: productpage, peer: peer).labels()
        XCTAssertTrue(text.contains(#"source_workload="a\"b\\c\nd""#), text)
        XCTAssertEqual(parse(text)["source_workload_namespace"]?.count, IstioRequestFacts.maxValueLength)
    }

    func testDestinationServiceFromClusterAndAuthority() {
        XCTAssertEqual(DestinationService.host(ofCluster: "outbound|9080|v2|reviews.default.svc.cluster.local"),
                       "reviews.default.svc.cluster.local")
        XCTAssertNil(DestinationService.host(ofCluster: "inbound|8080||"))
        XCTAssertNil(DestinationService.host(ofCluster: nil))
        XCTAssertEqual(DestinationService.host(ofAuthority: "reviews:9080", namespace: "ns"), "reviews.ns.svc.cluster.local")
        XCTAssertEqual(DestinationService.host(ofAuthority: "Reviews.Prod", namespace: "ns"), "reviews.prod")
        XCTAssertEqual(DestinationService.host(ofAuthority: "reviews.prod.svc", namespace: "ns"), "reviews.prod.svc.cluster.local")
        XCTAssertNil(DestinationService.host(ofAuthority: "10.0.0.1:80", namespace: "ns"))
        XCTAssertNil(DestinationService.host(ofAuthority: "bad host\u{7f}", namespace: "ns"))
        let external = DestinationService("api.example.com")
        XCTAssertEqual(external.name, "api.example.com")
        XCTAssertEqual(external.namespace, "unknown")
    }

    func testPeerMetadataRoundTripsAsProtobufStruct() throws {
        let encoded = PeerMetadata.encode(reviews)
        XCTAssertEqual(PeerMetadata.decode(encoded), reviews)
        // It is a google.protobuf.Struct: Istio's keys are there.
        let s = try Google_Protobuf_Struct(serializedBytes: Data(base64Encoded: encoded)!)
        XCTAssertEqual(Set(s.fields.keys), ["NAME", "WORKLOAD_NAME", "NAMESPACE", "CLUSTER_ID", "MESH_ID",
                                            "SERVICE_ACCOUNT", "LABELS"])
        XCTAssertNil(PeerMetadata.decode("not base64!"))
        XCTAssertNil(PeerMetadata.decode(Data("garbage".utf8).base64EncodedString()))
        XCTAssertNil(PeerMetadata.decode(String(repeating: "A", count: PeerMetadata.maxEncodedBytes + 4)))
    }

    /// The per-value memo answers as decoding does, for a value seen before too, and stays
    /// bounded however many distinct values arrive.
    func testCachedPeerMetadataDecodesAsDecodeDoes() {
        let encoded = PeerMetadata.encode(reviews)
        for _ in 0..<2 {
            XCTAssertEqual(PeerMetadata.decodeCached(encoded), reviews)
            XCTAssertNil(PeerMetadata.decodeCached("not base64!"))
            XCTAssertNil(PeerMetadata.decodeCached(String(repeating: "A", count: PeerMetadata.maxEncodedBytes + 4)))
        }
        for i in 0..<(PeerMetadata.maxCachedValues * 2) { XCTAssertNil(PeerMetadata.decodeCached("junk\(i)")) }
        XCTAssertEqual(PeerMetadata.decodeCached(encoded), reviews)
    }

    func testGRPCMessagesCountedAcrossChunkBoundaries() {
        var frames = ByteBuffer()
        for size in [0, 3, 70_000] {
            frames.writeInteger(UInt8(0))
            frames.writeInteger(UInt32(size))
            frames.writeRepeatingByte(7, count: size)
        }
        for chunk in [1, 2, 3, 7, 4096] {
            var counter = GRPCMessageCounter()
            var rest = frames
            while let piece = rest.readSlice(length: min(chunk, rest.readableBytes)), piece.readableBytes > 0 {
                counter.consume(piece)
            }
            XCTAssertEqual(counter.messages, 3, "chunks of \(chunk)")
        }
    }

    private func harness(_ reporter: String) throws -> ChainHarness {
        let config: JSONValue = .object([
            "reporter": .string(reporter),
            "workload": .object(["name": .string("reviews-v2"), "namespace": .string("default"),
                                 "labels": .object(["app": .string("reviews"), "version": .string("v2")]),
                                 "serviceAccount": .string("reviews"), "nodeId": .string("sidecar~1~reviews-v2.default")]),
        ])
        return try ChainHarness(eventLoop: loop, factories: [IstioStatsFactory.build(config)])
    }

    func testInboundStripsThePeersHeadersAndAnswersWithItsOwn() throws {
        let h = try harness("destination")
        h.sendRequest(headers: [(PeerMetadata.header, PeerMetadata.encode(productpage)), (PeerMetadata.idHeader, "x")])
        XCTAssertNil(h.upstream(PeerMetadata.header), "the app never sees the exchange headers")
        XCTAssertNil(h.upstream(PeerMetadata.idHeader))
        h.streamInfo.responseCode = 503
        h.sendResponse(status: 503, body: ["nope"])
        XCTAssertEqual(h.client(PeerMetadata.idHeader), "sidecar~1~reviews-v2.default")
        XCTAssertEqual(h.client(PeerMetadata.header).flatMap(PeerMetadata.decode)?.workload, "reviews-v2")
        h.complete()
        let keys = h.counters.values.keys.filter { $0.hasPrefix("istio_requests_total{") }
        XCTAssertEqual(keys.count, 1)
        let l = parse(keys.first!)
        XCTAssertEqual(l["source_workload"], "productpage-v1")
        XCTAssertEqual(l["destination_workload"], "reviews-v2")
        XCTAssertEqual(l["response_code"], "503")
        XCTAssertEqual(l["connection_security_policy"], "none", "plaintext inbound")
        XCTAssertEqual(l["destination_service"], "example.com", "the authority, when it names a host")
        let bytes = h.counters.histograms.first { $0.key.hasPrefix("istio_response_bytes{") }?.value
        XCTAssertEqual(bytes?.sum, 4)
        XCTAssertEqual(h.counters.histograms.filter { $0.key.hasPrefix("istio_request_duration_milliseconds{") }.count, 1)
    }

    func testOutboundSendsItsOwnAndTakesTheServersFromTheResponse() throws {
        let h = try harness("source")
        h.sendRequest(headers: [(PeerMetadata.header, "forged by the app")])
        XCTAssertEqual(h.upstreamHead?.headers[PeerMetadata.header].count, 1)
        XCTAssertEqual(h.upstream(PeerMetadata.header).flatMap(PeerMetadata.decode)?.workload, "reviews-v2")
        h.streamInfo.responseCode = 200
        h.streamInfo.clusterName = "outbound|9080||ratings.default.svc.cluster.local"
        h.sendResponse(headers: [(PeerMetadata.header, PeerMetadata.encode(productpage)), (PeerMetadata.idHeader, "p")])
        XCTAssertNil(h.client(PeerMetadata.header), "the client app never sees the exchange headers")
        XCTAssertNil(h.client(PeerMetadata.idHeader))
        h.complete()
        let key = try XCTUnwrap(h.counters.values.keys.first { $0.hasPrefix("istio_requests_total{") })
        let l = parse(key)
        XCTAssertEqual(l["reporter"], "source")
        XCTAssertEqual(l["source_workload"], "reviews-v2")
        XCTAssertEqual(l["destination_workload"], "productpage-v1")
        XCTAssertEqual(l["destination_service_name"], "ratings")
        XCTAssertEqual(l["connection_security_policy"], "unknown")
    }

    func testGRPCStreamCountsMessagesAndStatus() throws {
        let h = try harness("destination")
        var frame = ByteBuffer()
        frame.writeInteger(UInt8(0))
        frame.writeInteger(UInt32(2))
        frame.writeString("hi")
        h.sendRequest(method: "POST", headers: [("content-type", "application/grpc")],
                      body: [String(buffer: frame)])
        h.streamInfo.responseCode = 200
        h.sendResponse(headers: [("content-type", "application/grpc"), ("grpc-status", "5")])
        h.complete()
        let request = try XCTUnwrap(h.counters.values.first { $0.key.hasPrefix("istio_request_messages_total{") })
        XCTAssertEqual(request.value, 1)
        let l = parse(request.key)
        XCTAssertEqual(l["request_protocol"], "grpc")
        XCTAssertEqual(l["grpc_response_status"], "5")
        XCTAssertEqual(h.counters.values.first { $0.key.hasPrefix("istio_response_messages_total{") }?.value, 0)
    }

    func testConfigErrorsNameTheField() {
        XCTAssertThrowsError(try IstioStatsFactory.build(.object(["reporter": .string("middle"), "workload": .object([:])]))) {
            XCTAssertEqual(($0 as? ConfigError)?.path, "reporter")
        }
        XCTAssertThrowsError(try IstioStatsFactory.build(.object(["reporter": .string("source"),
                                                                   "workload": .object(["namespace": .string("d")])]))) {
            XCTAssertEqual(($0 as? ConfigError)?.path, "workload.name")
        }
        XCTAssertThrowsError(try IstioStatsFactory.build(.object(["reporter": .string("source"), "tags": .null,
                                                                   "workload": .object(["name": .string("a")])]))) {
            XCTAssertEqual(($0 as? ConfigError)?.path, "tags")
        }
    }
}

final class IstioTCPStatsTests: XCTestCase {
    func testTCPLabelSetIsIstiosWithTCPProtocolAndNoResponseCode() throws {
        let config = try IstioStatsConfig(.object(["reporter": .string("source"),
                                                   "workload": .object(["name": .string("gw"), "namespace": .string("istio-system")])]))
        let facts = TCPConnectionFacts(listener: "0.0.0.0_31400", cluster: "outbound|9000||tcp-echo.default.svc.cluster.local",
                                       serverName: nil, responseFlags: "-")
        let labels = IstioTCPStats.facts(facts, config: config).labels()
        let keys = labels.split(separator: ",").map { String($0.prefix { $0 != "=" }) }
        XCTAssertEqual(keys.count, 23, labels)
        XCTAssertFalse(keys.contains("response_code"))
        XCTAssertFalse(keys.contains("grpc_response_status"))
        XCTAssertTrue(labels.contains(#"request_protocol="tcp""#))
        XCTAssertTrue(labels.contains(#"destination_service="tcp-echo.default.svc.cluster.local""#))
        XCTAssertTrue(labels.contains(#"source_workload="gw""#))
        XCTAssertTrue(labels.hasSuffix(#"response_flags="-",connection_security_policy="unknown""#))
    }
}

/// Telemetry metric overrides pushed to the proxy, applied as the filter records.
final class IstioStatsOverrideTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    /// One filter config (one series cache) and the stats of every request through it.
    final class Proxy {
        let factory: HTTPFilterFactory
        let bootstrap: Bootstrap
        var counters: [String: Int] = [:]
        var histograms: Set<String> = []

        init(_ overrides: [MetricOverride]) throws {
            factory = try IstioStatsFactory.build(.object([
                "reporter": .string("destination"),
                "workload": .object(["name": .string("reviews-v2"), "namespace": .string("default")]),
            ]))
            var bootstrap = Bootstrap()
            bootstrap.telemetry = ProxyTelemetry(metricOverrides: overrides)
            self.bootstrap = bootstrap
        }

        func request(user: String?, loop: EmbeddedEventLoop) throws {
            let h = try ChainHarness(eventLoop: loop, factories: [factory], bootstrap: bootstrap)
            h.sendRequest(headers: user.map { [("x-user", $0)] } ?? [])
            h.streamInfo.responseCode = 200
            h.sendResponse(status: 200, body: ["ok"])
            h.complete()
            counters.merge(h.counters.values, uniquingKeysWith: +)
            histograms.formUnion(h.counters.histograms.keys)
        }
    }

    private func labels(_ key: String) -> [String: String] {
        var out: [String: String] = [:]
        let inner = key.drop { $0 != "{" }.dropFirst().dropLast()
        for pair in inner.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            out[String(kv[0])] = String(kv[1].dropFirst().dropLast())
        }
        return out
    }

    func testADisabledMetricIsNotRecordedAndTheOthersAre() throws {
        let h = try Proxy([MetricOverride(metric: .requestDuration, reporter: .destination, disabled: true),
                           MetricOverride(metric: .requestCount, reporter: .source, disabled: true)])
        try h.request(user: nil, loop: loop)
        XCTAssertTrue(h.histograms.filter { $0.hasPrefix("istio_request_duration_milliseconds{") }.isEmpty)
        XCTAssertEqual(h.histograms.filter { $0.hasPrefix("istio_request_bytes{") }.count, 1)
        XCTAssertEqual(h.counters.keys.filter { $0.hasPrefix("istio_requests_total{") }.count, 1,
                       "a CLIENT-only override does not touch the destination reporter")
    }

    func testTagOverridesUpsertAndRemoveLabelsPerRequest() throws {
        let h = try Proxy([MetricOverride(metric: .requestCount, reporter: .destination, tags: [
            "x_user": .upsert(expression: "request.headers['x-user']"),
            "request_protocol": .remove,
            "response_code": .upsert(expression: "'fixed'"),
        ])])
        for user in ["alice", "bob", "alice", String(repeating: "z", count: 1000), nil] {
            try h.request(user: user, loop: loop)
        }
        let keys = h.counters.keys.filter { $0.hasPrefix("istio_requests_total{") }
        let users = Set(keys.map { labels($0)["x_user"] })
        XCTAssertEqual(users, ["alice", "bob", String(repeating: "z", count: 256), "unknown"],
                       "the cache keys series by the override's result; long values cut; a missing header is unknown")
        XCTAssertEqual(h.counters.first { labels($0.key)["x_user"] == "alice" }?.value, 2)
        for key in keys {
            let l = labels(key)
            XCTAssertNil(l["request_protocol"])
            XCTAssertEqual(l["response_code"], "fixed", "an UPSERT of a standard label replaces its value")
            XCTAssertTrue(key.hasSuffix(",x_user=\"\(l["x_user"]!)\"}"), "an added label follows Istio's")
        }
        // Other metrics keep Istio's standard labels.
        let size = try XCTUnwrap(h.histograms.first { $0.hasPrefix("istio_request_bytes{") })
        XCTAssertEqual(labels(size)["request_protocol"], "http")
        XCTAssertNil(labels(size)["x_user"])
        XCTAssertEqual(h.histograms.filter { $0.hasPrefix("istio_request_bytes{") }.count, 1)
    }

    func testABadPushedExpressionRefusesTheConfig() {
        var bootstrap = Bootstrap()
        bootstrap.telemetry = ProxyTelemetry(metricOverrides: [
            MetricOverride(metric: .requestCount, reporter: .source, tags: ["x": .upsert(expression: "request.size")])])
        XCTAssertThrowsError(try ProxySnapshot.build(bootstrap, version: 1, registry: FilterCatalog.registry))
        bootstrap.telemetry = ProxyTelemetry(metricOverrides: [
            MetricOverride(metric: .requestCount, reporter: .source, tags: ["bad-name": .remove])])
        XCTAssertThrowsError(try ProxySnapshot.build(bootstrap, version: 1, registry: FilterCatalog.registry))
    }
}
