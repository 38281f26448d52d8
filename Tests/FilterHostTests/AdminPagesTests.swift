@testable import FilterHost
import Foundation
import Logging
import MeshAPI
import Transport
import XCTest

final class AdminPagesTests: XCTestCase {
    func testHelpListsEveryPageSortedWithPostMarked() {
        let lines = AdminEndpoints.help.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "admin commands are:")
        let paths = lines.dropFirst().map { String($0.dropFirst(2).prefix { $0 != ":" && $0 != " " }) }
        XCTAssertEqual(paths, paths.sorted())
        XCTAssertEqual(Set(paths), Set(AdminEndpoints.table.map(\.path)))
        XCTAssertTrue(lines.contains("  /quitquitquit (POST): exit the server"), lines.joined(separator: "\n"))
        XCTAssertTrue(lines.contains("  /clusters: upstream cluster status (?format=json)"))
        for e in AdminEndpoints.table { XCTAssertFalse(e.help.isEmpty, e.path) }
    }

    func testUpstreamFailureBodiesAreEnvoysShortText() {
        let prefix = "upstream connect error or disconnect/reset before headers. reset reason: "
        XCTAssertEqual(UpstreamFailureReply.body(.connectFailure("NIOConnectionError(host: 127.0.0.1, port: 1)")),
                       prefix + "connection failure")
        XCTAssertEqual(UpstreamFailureReply.body(.reset("closed")), prefix + "connection termination")
        XCTAssertEqual(UpstreamFailureReply.body(.overflow("x")), prefix + "overflow")
        XCTAssertEqual(UpstreamFailureReply.body(.noHealthyUpstream), "no healthy upstream")
        XCTAssertEqual(UpstreamFailureReply.transportReason(.connectFailure("a \"b\"\nc")), "a 'b' c")
        XCTAssertNil(UpstreamFailureReply.transportReason(.noHealthyUpstream))
    }

    func testHostCountsMergeAndResetKeepsSeries() {
        let a = LoopStats(), b = LoopStats()
        a.upstreamResponse(cluster: "c", code: 200, host: "127.0.0.1:1")
        a.upstreamResponse(cluster: "c", code: 503, host: "127.0.0.1:1")
        b.upstreamResponse(cluster: "c", code: 200, host: "127.0.0.1:1")
        a.count("x_total{a=\"1\"}", 5)
        var total = a.snapshot
        total.merge(b.snapshot)
        let key = LoopStats.HostKey(cluster: "c", host: "127.0.0.1:1")
        XCTAssertEqual(total.hosts[key]?.requests, 3)
        XCTAssertEqual(total.hosts[key]?.errors, 1)
        XCTAssertEqual(total.counters["meshd_upstream_rq_total{cluster=\"c\"}"], 3)
        a.resetCounters()
        let after = a.snapshot
        XCTAssertEqual(after.counters["x_total{a=\"1\"}"], 0)
        XCTAssertEqual(after.counters["meshd_upstream_rq_total{cluster=\"c\"}"], 0)
        XCTAssertEqual(after.hosts[key]?.requests, 0)
    }

    func testClustersPageHasEnvoysLines() {
        let cluster = Cluster(name: "web", endpoints: [Endpoint(address: "127.0.0.1", port: 9000)])
        let key = LoopStats.HostKey(cluster: "web", host: "127.0.0.1:9000")
        let text = AdminPages.clusters([cluster], hosts: [key: .init(requests: 4, errors: 1, connections: 2)])
        for line in ["web::default_priority::max_connections::1024", "web::default_priority::max_retries::3",
                     "web::added_via_api::true", "web::127.0.0.1:9000::cx_active::2", "web::127.0.0.1:9000::rq_total::4",
                     "web::127.0.0.1:9000::rq_success::3", "web::127.0.0.1:9000::rq_error::1",
                     "web::127.0.0.1:9000::health_flags::healthy", "web::127.0.0.1:9000::weight::1"] {
            XCTAssertTrue(text.contains(line + "\n"), "\(line) missing from\n\(text)")
        }
    }

    func testStatsFilterAndJSON() throws {
        let set = MetricSet(counters: ["a_total{x=\"1\"}": 1, "b_total": 2], gauges: ["g": 3], histograms: [:])
        let kept = set.filtered(by: try RE2Regex("^a_|^g$"))
        XCTAssertEqual(Set(kept.counters.keys), ["a_total{x=\"1\"}"])
        XCTAssertEqual(Set(kept.gauges.keys), ["g"])
        let json = try JSONSerialization.jsonObject(with: Data(kept.json.utf8)) as? [String: Any]
        let stats = json?["stats"] as? [[String: Any]]
        XCTAssertEqual(stats?.compactMap { $0["name"] as? String }, ["a_total{x=\"1\"}", "g"])
        XCTAssertEqual(stats?.compactMap { $0["value"] as? Int }, [1, 3])
    }

    func testLogLevelsByLabelAndAll() {
        let levels = LogLevels()
        var handler = RuntimeLevelLogHandler(label: "meshd.proxy", levels: levels,
                                             inner: StreamLogHandler.standardError(label: "meshd.proxy"))
        XCTAssertEqual(handler.logLevel, .info)
        levels.setAll(.debug)
        XCTAssertEqual(handler.logLevel, .debug)
        XCTAssertTrue(levels.set("meshd.proxy", .error))
        XCTAssertFalse(levels.set("nobody", .error))
        XCTAssertEqual(handler.logLevel, .error)
        handler.logLevel = .trace
        XCTAssertEqual(levels.listing.map(\.level), [.trace])
        XCTAssertEqual(LogLevels.parse("warn"), .warning)
        XCTAssertEqual(LogLevels.parse("off"), .critical)
        XCTAssertNil(LogLevels.parse("loud"))
    }
}
