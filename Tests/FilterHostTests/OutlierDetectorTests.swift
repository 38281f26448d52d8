@testable import FilterHost
import MeshAPI
import NIOCore
import XCTest

/// Envoy's consecutive-errors outlier detection: counters, ejection, its growing time, the
/// interval sweep and the maximum ejected share.
final class OutlierDetectorTests: XCTestCase {
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    private func at(_ ms: Int64) -> NIODeadline { t0 + .milliseconds(ms) }

    private func fail(_ d: inout OutlierDetector, _ host: String, times: Int, status: Int = 503,
                      hosts: Int = 4, at now: NIODeadline) -> OutlierDetector.Action {
        var last = OutlierDetector.Action.none
        for _ in 0..<times { last = d.record(.response(status), host: host, hostCount: hosts, now: now) }
        return last
    }

    func testConsecutive5xxEjectsAndASuccessResetsTheCount() {
        var d = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 3, maxEjectionPercent: 100))
        XCTAssertEqual(fail(&d, "a", times: 2, at: t0), .none)
        XCTAssertEqual(d.record(.response(200), host: "a", hostCount: 4, now: t0), .none)
        XCTAssertEqual(fail(&d, "a", times: 2, status: 500, at: t0), .none)
        XCTAssertFalse(d.isEjected("a"))
        XCTAssertEqual(fail(&d, "a", times: 1, status: 500, at: t0), .ejected(.consecutive5xx))
        XCTAssertTrue(d.isEjected("a"))
        XCTAssertFalse(d.isEjected("b"))
    }

    func testEjectionTimeIsBaseTimesEjectionsAndHostsComeBackAtTheSweep() {
        var d = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 1, intervalMs: 1000, baseEjectionTimeMs: 2000,
                                                               maxEjectionPercent: 100))
        XCTAssertEqual(fail(&d, "a", times: 1, at: t0), .ejected(.consecutive5xx))
        XCTAssertEqual(d.sweepIfDue(now: at(1000)), [])  // ejected for 2 s
        XCTAssertTrue(d.isEjected("a"))
        XCTAssertEqual(d.sweepIfDue(now: at(2000)), ["a"])
        XCTAssertFalse(d.isEjected("a"))
        // Second ejection right away: 2 × 2 s.
        XCTAssertEqual(fail(&d, "a", times: 1, at: at(2000)), .ejected(.consecutive5xx))
        XCTAssertEqual(d.sweepIfDue(now: at(5000)), [])
        XCTAssertEqual(d.sweepIfDue(now: at(6000)), ["a"])
        // In service for sweeps, the multiplier comes down (one per sweep) to 0.
        XCTAssertEqual(d.hosts["a"]?.ejections, 2)
        d.sweepIfDue(now: at(7000))
        d.sweepIfDue(now: at(8000))
        XCTAssertEqual(d.hosts["a"]?.ejections, 0)
        XCTAssertEqual(fail(&d, "a", times: 1, at: at(9000)), .ejected(.consecutive5xx))
        XCTAssertEqual(d.sweepIfDue(now: at(11_000)), ["a"], "back to the base time")
    }

    func testEjectionTimeIsCappedByMaxEjectionTime() {
        var d = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 1, intervalMs: 1000, baseEjectionTimeMs: 1000,
                                                               maxEjectionTimeMs: 1500, maxEjectionPercent: 100))
        var now = t0
        for _ in 0..<4 {
            XCTAssertEqual(fail(&d, "a", times: 1, at: now), .ejected(.consecutive5xx))
            // Never out longer than the cap (rounded up to the sweep).
            XCTAssertEqual(d.sweepIfDue(now: now + .milliseconds(2000)), ["a"])
            now = now + .milliseconds(2000)
        }
    }

    func testNeverMoreThanMaxEjectionPercent() {
        // Envoy: a host is ejected only while the ejected share is below the maximum.
        var d = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 1, maxEjectionPercent: 50))
        XCTAssertEqual(fail(&d, "a", times: 1, at: t0), .ejected(.consecutive5xx))   // 0 % ejected before
        XCTAssertEqual(fail(&d, "b", times: 1, at: t0), .ejected(.consecutive5xx))   // 25 %
        XCTAssertEqual(fail(&d, "c", times: 1, at: t0), .overflow(.consecutive5xx))  // 50 %: no
        XCTAssertEqual(fail(&d, "d", times: 1, at: t0), .overflow(.consecutive5xx))
        XCTAssertEqual(d.ejectedCount, 2)
        // Istio's default, 10 %, still ejects one host.
        var small = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 1))
        XCTAssertEqual(fail(&small, "a", times: 1, hosts: 3, at: t0), .ejected(.consecutive5xx))
        XCTAssertEqual(fail(&small, "b", times: 1, hosts: 3, at: t0), .overflow(.consecutive5xx))
    }

    func testGatewayErrorsOnlyCountGatewayStatusesAndAreOffByDefault() {
        var d = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 0, consecutiveGatewayFailure: 2,
                                                               maxEjectionPercent: 100))
        XCTAssertEqual(fail(&d, "a", times: 5, status: 500, at: t0), .none)
        XCTAssertEqual(fail(&d, "a", times: 2, status: 502, at: t0), .ejected(.consecutiveGatewayFailure))
        var off = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 0, maxEjectionPercent: 100))
        XCTAssertEqual(fail(&off, "a", times: 20, status: 503, at: t0), .none)
    }

    func testLocalOriginFailuresCountAs5xxUnlessSplit() {
        var unsplit = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 2, maxEjectionPercent: 100))
        XCTAssertEqual(unsplit.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .none)
        XCTAssertEqual(unsplit.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .ejected(.consecutive5xx))

        var split = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 2, consecutiveLocalOriginFailure: 3,
                                                                   splitExternalLocalOriginErrors: true, maxEjectionPercent: 100))
        XCTAssertEqual(split.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .none)
        XCTAssertEqual(split.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .none)
        XCTAssertEqual(split.record(.localOriginSuccess, host: "a", hostCount: 2, now: t0), .none)
        XCTAssertEqual(split.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .none)
        XCTAssertEqual(split.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .none)
        XCTAssertEqual(split.record(.localOriginFailure, host: "a", hostCount: 2, now: t0), .ejected(.consecutiveLocalOriginFailure))
    }

    func testKeepForgetsHostsThatLeftTheCluster() {
        var d = OutlierDetector(config: OutlierDetectionConfig(consecutive5xx: 1, maxEjectionPercent: 100))
        _ = fail(&d, "a", times: 1, at: t0)
        d.keep(only: ["b"])
        XCTAssertFalse(d.isEjected("a"))
        XCTAssertEqual(d.ejectedCount, 0)
    }
}
