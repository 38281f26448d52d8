@testable import FilterHost
import MeshAPI
import XCTest

/// Envoy's cluster circuit breakers: counted per cluster and resource, across threads.
final class CircuitBreakersTests: XCTestCase {
    private func cluster(_ name: String, connections: Int? = nil, pending: Int? = nil, requests: Int? = nil) -> Cluster {
        Cluster(name: name, maxConnections: connections, maxPendingRequests: pending, maxRequests: requests, endpoints: [])
    }

    func testEachResourceStopsAtItsLimitAndReopensOnRelease() {
        let breakers = CircuitBreakers()
        let c = cluster("a", connections: 1, pending: 2, requests: 3)
        XCTAssertTrue(breakers.tryAcquire(.connections, of: c))
        XCTAssertFalse(breakers.tryAcquire(.connections, of: c))
        XCTAssertTrue(breakers.tryAcquire(.pendingRequests, of: c))
        XCTAssertTrue(breakers.tryAcquire(.pendingRequests, of: c))
        XCTAssertFalse(breakers.tryAcquire(.pendingRequests, of: c))
        for _ in 0..<3 { XCTAssertTrue(breakers.tryAcquire(.requests, of: c)) }
        XCTAssertFalse(breakers.tryAcquire(.requests, of: c))

        breakers.release(.pendingRequests, of: "a", 2)
        XCTAssertEqual(breakers.count(.pendingRequests, of: "a"), 0)
        XCTAssertTrue(breakers.tryAcquire(.pendingRequests, of: c))
        breakers.release(.connections, of: "a")
        XCTAssertTrue(breakers.tryAcquire(.connections, of: c))
    }

    func testClustersAreCountedApartAndDefaultToEnvoys1024() {
        let breakers = CircuitBreakers()
        let small = cluster("small", requests: 1), other = cluster("other")
        XCTAssertTrue(breakers.tryAcquire(.requests, of: small))
        XCTAssertFalse(breakers.tryAcquire(.requests, of: small))
        for _ in 0..<1024 { XCTAssertTrue(breakers.tryAcquire(.requests, of: other)) }
        XCTAssertFalse(breakers.tryAcquire(.requests, of: other))
        XCTAssertEqual(breakers.count(.requests, of: "other"), 1024)
    }

    func testForcedAcquireGoesOverTheLimitAndReleaseNeverGoesNegative() {
        let breakers = CircuitBreakers()
        let c = cluster("a", connections: 1)
        XCTAssertTrue(breakers.tryAcquire(.connections, of: c))
        breakers.forceAcquire(.connections, of: "a")
        XCTAssertEqual(breakers.count(.connections, of: "a"), 2)
        breakers.release(.connections, of: "a", 5)
        XCTAssertEqual(breakers.count(.connections, of: "a"), 0)
        XCTAssertTrue(breakers.tryAcquire(.connections, of: c))
    }

    func testConcurrentAcquiresNeverExceedTheLimit() {
        let breakers = CircuitBreakers()
        let c = cluster("shared", requests: 10)
        let granted = GrantCounter()
        DispatchQueue.concurrentPerform(iterations: 200) { _ in
            if breakers.tryAcquire(.requests, of: c) { granted.increment() }
        }
        XCTAssertEqual(granted.value, 10)
        XCTAssertEqual(breakers.count(.requests, of: "shared"), 10)
    }
}

private final class GrantCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
