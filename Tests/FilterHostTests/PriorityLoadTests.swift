@testable import FilterHost
import MeshAPI
import XCTest

/// Envoy's priority load with the 1.4 overprovisioning factor, and locality weights.
final class PriorityLoadTests: XCTestCase {
    private func shares(healthy: [Int: Int], total: [Int: Int], excluding: Set<Int> = []) -> [Int: Int] {
        var out: [Int: Int] = [:]
        for i in 0..<1000 {
            if let p = PriorityLoad.level(healthy: healthy, total: total, random: (Double(i) + 0.5) / 1000,
                                          excluding: excluding) { out[p, default: 0] += 1 }
        }
        return out
    }

    /// Envoy's previous_priorities: excluded levels count as having no healthy endpoint; when
    /// nothing is left, the original loads apply.
    func testExcludedLevelsGetNoLoadUnlessNothingElseIsHealthy() {
        XCTAssertEqual(shares(healthy: [0: 2, 1: 2], total: [0: 2, 1: 2], excluding: [0]), [1: 1000])
        XCTAssertEqual(shares(healthy: [0: 2, 1: 1, 2: 1], total: [0: 2, 1: 4, 2: 4], excluding: [0]), [1: 500, 2: 500])
        XCTAssertEqual(shares(healthy: [0: 2, 1: 0], total: [0: 2, 1: 2], excluding: [0]), [0: 1000])
        XCTAssertEqual(shares(healthy: [0: 2, 1: 2], total: [0: 2, 1: 2], excluding: [0, 1]), [0: 1000])
    }

    func testAHealthyFirstLevelTakesEverything() {
        XCTAssertEqual(shares(healthy: [0: 2, 1: 2], total: [0: 2, 1: 2]), [0: 1000])
        // 3 of 4 healthy is 75 % × 1.4 > 100 %: still everything.
        XCTAssertEqual(shares(healthy: [0: 3, 1: 2], total: [0: 4, 1: 2]), [0: 1000])
    }

    func testTrafficSpillsInProportionToWhatIsLost() {
        // 1 of 4 healthy: 25 % × 1.4 = 35 % stays, 65 % goes to the next level.
        XCTAssertEqual(shares(healthy: [0: 1, 1: 2], total: [0: 4, 1: 2]), [0: 350, 1: 650])
        // All of the first level ejected: the next takes it all.
        XCTAssertEqual(shares(healthy: [1: 2], total: [0: 2, 1: 2]), [1: 1000])
        // Every level degraded: loads are scaled up to 100 %.
        XCTAssertEqual(shares(healthy: [0: 1, 1: 1], total: [0: 10, 1: 10]), [0: 500, 1: 500])
        XCTAssertNil(PriorityLoad.level(healthy: [:], total: [0: 2], random: 0.5))
    }

    func testWeightsPickInProportionAndNeverAZero() {
        var counts = [0, 0, 0]
        for i in 0..<1000 {
            counts[PriorityLoad.weighted([800, 0, 200], random: (Double(i) + 0.5) / 1000)!] += 1
        }
        XCTAssertEqual(counts, [800, 0, 200])
        XCTAssertNil(PriorityLoad.weighted([0, 0], random: 0.3))
    }
}

/// Envoy's slow start factor: (elapsed / window)^(1 / aggression), never below minWeightPercent.
final class SlowStartTests: XCTestCase {
    func testFactorGrowsFromTheMinimumToOne() {
        let linear = SlowStartConfig(windowMs: 10_000)
        XCTAssertEqual(linear.factor(elapsedMs: 0), 0.1)
        XCTAssertEqual(linear.factor(elapsedMs: 500), 0.1, "below the 10 % floor")
        XCTAssertEqual(linear.factor(elapsedMs: 5000), 0.5, accuracy: 1e-9)
        XCTAssertEqual(linear.factor(elapsedMs: 10_000), 1)
        let aggressive = SlowStartConfig(windowMs: 10_000, aggression: 2, minWeightPercent: 1)
        XCTAssertEqual(aggressive.factor(elapsedMs: 2500), 0.5, accuracy: 1e-9, "sqrt(0.25)")
        XCTAssertEqual(aggressive.factor(elapsedMs: 0), 0.01)
    }
}
