@testable import FilterHost
import MeshAPI
import NIOCore
import XCTest

/// The overload manager's config and state machine (tests/integration/test_overload.py
/// drives it in a running proxy).
final class OverloadTests: XCTestCase {
    private let heap = OverloadResource.fixedHeap
    private let conns = OverloadResource.downstreamConnectionsName

    private func plan(_ yaml: String) throws -> OverloadPlan {
        try OverloadPlan(BootstrapLoader.parse(yaml).overloadManager)
    }

    private func refusal(_ yaml: String) -> ConfigError? {
        do {
            _ = try plan(yaml)
            return nil
        } catch let e as ConfigError {
            return e
        } catch {
            XCTFail("\(error)")
            return nil
        }
    }

    private let twoActions = """
        overloadManager:
          refreshIntervalMs: 50
          resourceMonitors:
            - {name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 1000}
            - {name: envoy.resource_monitors.global_downstream_max_connections, maxActiveDownstreamConnections: 10}
          actions:
            - name: envoy.overload_actions.disable_http_keepalive
              triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.8}}]
            - name: envoy.overload_actions.stop_accepting_requests
              triggers:
                - {name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.95}}
                - {name: envoy.resource_monitors.global_downstream_max_connections, threshold: {value: 1.0}}
        """

    func testAbsentConfigIsOff() throws {
        let p = try plan("listeners: []")
        XCTAssertTrue(p.isOff)
        XCTAssertEqual(p.refreshInterval, .seconds(1))
        var s = OverloadState(plan: p)
        XCTAssertEqual(s.update([:]), .unchanged)
        XCTAssertEqual(s.active, [])
    }

    func testParsesMonitorsAndActions() throws {
        let p = try plan(twoActions)
        XCTAssertEqual(p.refreshInterval, .milliseconds(50))
        XCTAssertEqual(p.monitors.map(\.resource), [.processMemory(maxBytes: 1000), .downstreamConnections(max: 10)])
        XCTAssertEqual(p.actions.map(\.action), [.disableHTTPKeepAlive, .stopAcceptingRequests])
        XCTAssertEqual(p.actions[1].triggers, [.init(monitor: heap, threshold: 0.95), .init(monitor: conns, threshold: 1.0)])
        // The connection monitor's maximum is also a cap at accept (Envoy's global limit).
        XCTAssertEqual(p.maxDownstreamConnections, 10)
        XCTAssertNil(try plan("listeners: []").maxDownstreamConnections)
        let alias = try plan("""
            overloadManager:
              resourceMonitors: [{name: envoy.resource_monitors.downstream_connections, maxActiveDownstreamConnections: 7}]
            """)
        XCTAssertEqual(alias.maxDownstreamConnections, 7)
        XCTAssertEqual(alias.refreshInterval, .seconds(1))
        XCTAssertTrue(alias.actions.isEmpty)
    }

    func testRefusalsNameTheField() {
        let cases: [(String, String, String)] = [
            ("resourceMonitors: [{name: envoy.resource_monitors.cpu_utilization}]",
             "overloadManager.resourceMonitors[0].name", "unknown resource monitor"),
            ("resourceMonitors: [{name: envoy.resource_monitors.fixed_heap}]",
             "overloadManager.resourceMonitors[0].maxHeapSizeBytes", "required"),
            ("resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 0}]",
             "overloadManager.resourceMonitors[0].maxHeapSizeBytes", "at least 1"),
            ("resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5, maxActiveDownstreamConnections: 3}]",
             "overloadManager.resourceMonitors[0].maxActiveDownstreamConnections", "not a setting"),
            ("refreshIntervalMs: 0", "overloadManager.refreshIntervalMs", "at least 1"),
            // Envoy's snake_case or typed_config is refused, not ignored.
            ("refresh_interval: 0.25s", "overloadManager.refresh_interval", "unknown field"),
            ("resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, typed_config: {max_heap_size_bytes: 5}}]",
             "overloadManager.resourceMonitors[0].typed_config", "unknown field"),
            ("""
             resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5}]
             actions: [{name: envoy.overload_actions.stop_accepting_requests, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.9, unit: x}}]}]
             """, "overloadManager.actions[0].triggers[0].threshold.unit", "unknown field"),
            ("""
             resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5}]
             actions: [{name: envoy.overload_actions.shrink_heap, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.9}}]}]
             """, "overloadManager.actions[0].name", "unknown overload action"),
            ("""
             resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5}]
             actions: [{name: envoy.overload_actions.stop_accepting_requests, triggers: [{name: nope, threshold: {value: 0.9}}]}]
             """, "overloadManager.actions[0].triggers[0].name", "no resource monitor named 'nope'"),
            ("""
             resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5}]
             actions: [{name: envoy.overload_actions.stop_accepting_requests, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 1.5}}]}]
             """, "overloadManager.actions[0].triggers[0].threshold.value", "between 0 and 1"),
            ("""
             resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5}]
             actions: [{name: envoy.overload_actions.stop_accepting_requests, triggers: [{name: envoy.resource_monitors.fixed_heap, scaled: {scalingThreshold: 0.5, saturationThreshold: 0.9}}]}]
             """, "overloadManager.actions[0].triggers[0].scaled", "not supported"),
            ("""
             resourceMonitors: [{name: envoy.resource_monitors.fixed_heap, maxHeapSizeBytes: 5}]
             actions: [{name: envoy.overload_actions.stop_accepting_requests, triggers: []}]
             """, "overloadManager.actions[0].triggers", "at least one trigger"),
        ]
        for (body, path, reason) in cases {
            let yaml = "overloadManager:\n" + body.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
            let e = refusal(yaml)
            XCTAssertEqual(e?.path, path, body)
            XCTAssertTrue(e?.reason.contains(reason) ?? false, "\(e?.reason ?? "accepted"): \(body)")
        }
    }

    func testSnapshotRefusesABadOverloadConfig() {
        let b = Bootstrap(overloadManager: OverloadManagerConfig(refreshIntervalMs: -5))
        XCTAssertThrowsError(try ProxySnapshot.build(b, version: 1, registry: FilterRegistry())) { e in
            XCTAssertEqual((e as? ConfigError)?.path, "overloadManager.refreshIntervalMs")
        }
    }

    /// pressure = used / max; an action is active at or above its threshold, inactive from
    /// the first reading below it (Envoy's threshold trigger has no hysteresis).
    func testPressureDrivesActions() throws {
        var s = OverloadState(plan: try plan(twoActions))
        XCTAssertEqual(s.update([heap: .used(500), conns: .used(1)]), .unchanged)
        XCTAssertEqual(s.monitors[heap]?.pressure, 0.5)
        XCTAssertEqual(s.update([heap: .used(800)]), .actions([.disableHTTPKeepAlive]))
        XCTAssertEqual(s.update([heap: .used(960)]), .actions([.disableHTTPKeepAlive, .stopAcceptingRequests]))
        XCTAssertEqual(s.update([heap: .used(990)]), .unchanged)
        XCTAssertEqual(s.update([heap: .used(949)]), .actions([.disableHTTPKeepAlive]))
        XCTAssertEqual(s.update([heap: .used(799)]), .actions([]))
        // Any trigger activates the action: the connection monitor at its maximum.
        XCTAssertEqual(s.update([conns: .used(10)]), .actions([.stopAcceptingRequests]))
        XCTAssertTrue(s.isActive(.stopAcceptingRequests))
        XCTAssertFalse(s.isActive(.disableHTTPKeepAlive))
        XCTAssertEqual(s.update([conns: .used(9)]), .actions([]))
    }

    /// A failed reading is counted and changes nothing: the last pressure stands.
    func testFailedReadingKeepsTheLastPressure() throws {
        var s = OverloadState(plan: try plan(twoActions))
        XCTAssertEqual(s.update([heap: .used(2000)]), .actions([.disableHTTPKeepAlive, .stopAcceptingRequests]))
        XCTAssertEqual(s.update([heap: .failed]), .unchanged)
        XCTAssertEqual(s.update([heap: .failed]), .unchanged)
        XCTAssertEqual(s.monitors[heap]?.failedUpdates, 2)
        XCTAssertEqual(s.monitors[heap]?.pressure, 2.0)
        // Never read: no pressure, no action.
        var fresh = OverloadState(plan: try plan(twoActions))
        XCTAssertEqual(fresh.update([heap: .failed]), .unchanged)
        XCTAssertNil(fresh.monitors[heap]?.pressure)
    }

    /// A new config is judged against the last readings at once: raising the limit ends the
    /// overload without waiting for the next refresh; dropping the config ends every action.
    func testReconfigureReevaluates() throws {
        var s = OverloadState(plan: try plan(twoActions))
        _ = s.update([heap: .used(990), conns: .used(3)])
        XCTAssertEqual(s.active, [.disableHTTPKeepAlive, .stopAcceptingRequests])
        let raised = try plan(twoActions.replacingOccurrences(of: "maxHeapSizeBytes: 1000", with: "maxHeapSizeBytes: 100000"))
        XCTAssertEqual(s.reconfigure(raised), .actions([]))
        XCTAssertEqual(s.monitors[heap]?.pressure, 0.0099)
        XCTAssertEqual(s.monitors[conns]?.used, 3)
        XCTAssertEqual(s.reconfigure(.off), .unchanged)
        XCTAssertTrue(s.monitors.isEmpty)
        _ = s.reconfigure(try plan(twoActions))
        XCTAssertEqual(s.update([conns: .used(10)]), .actions([.stopAcceptingRequests]))
        XCTAssertEqual(s.reconfigure(.off), .actions([]))
    }

    func testStatmParsing() {
        XCTAssertEqual(ResourceReaders.parseStatm(Array("1234 567 89 1 0 300 0\n".utf8), pageSize: 4096), 567 * 4096)
        XCTAssertNil(ResourceReaders.parseStatm(Array("garbage".utf8), pageSize: 4096))
        #if os(Linux)
        let rss = ResourceReaders.residentBytes()
        XCTAssertNotNil(rss)
        XCTAssertGreaterThan(rss ?? 0, 1 << 20)
        #endif
    }
}
