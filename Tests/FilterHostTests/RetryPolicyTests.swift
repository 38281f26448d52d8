@testable import FilterHost
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport
import XCTest

/// The router's retry policy: parsing Envoy's conditions, which outcomes they retry, the
/// backoff, the retry state's decisions, the replay buffer and the mirror's authority.
final class RetryPolicyTests: XCTestCase {
    private func policy(_ retryOn: String, retries: Int = 2, codes: [Int]? = nil,
                        headers: [HeaderMatcher]? = nil) -> CompiledRetryPolicy {
        CompiledRetryPolicy(RetryPolicy(retryOn: retryOn, numRetries: retries, retriableStatusCodes: codes,
                                        retriableHeaders: headers))
    }

    private func response(_ status: Int, _ headers: [(String, String)] = []) -> AttemptOutcome {
        .response(ResponseHead(status: status, headers: HTTPHeaders(headers)))
    }

    func testParsesConditionsAndReportsUnknownOnes() {
        let (c, unknown) = RetryConditions.parse(" 5xx, reset ,cancelled,,bogus")
        XCTAssertEqual(c, [.fiveXX, .reset, .grpcCancelled])
        XCTAssertEqual(unknown, ["bogus"])
        XCTAssertEqual(RetryConditions.parse(RetryConditions.byName.keys.joined(separator: ",")).unknown, [])
    }

    func testFiveXXRetriesEveryServerErrorAndEveryReset() {
        let p = policy("5xx")
        for status in [500, 502, 503, 504, 599] { XCTAssertTrue(p.isRetriable(response(status)), "\(status)") }
        for status in [200, 404, 409, 429] { XCTAssertFalse(p.isRetriable(response(status)), "\(status)") }
        XCTAssertTrue(p.isRetriable(.connectFailure))
        XCTAssertTrue(p.isRetriable(.reset(refused: false)))
        XCTAssertTrue(p.isRetriable(.perTryTimeout))
    }

    func testGatewayErrorOnlyRetries502To504() {
        let p = policy("gateway-error")
        XCTAssertFalse(p.isRetriable(response(500)))
        for status in [502, 503, 504] { XCTAssertTrue(p.isRetriable(response(status))) }
        XCTAssertTrue(p.isRetriable(.perTryTimeout))
    }

    func testConnectFailureAndRefusedStreamAreNarrow() {
        let connect = policy("connect-failure")
        XCTAssertTrue(connect.isRetriable(.connectFailure))
        XCTAssertFalse(connect.isRetriable(.reset(refused: false)))
        XCTAssertFalse(connect.isRetriable(.perTryTimeout))
        XCTAssertFalse(connect.isRetriable(response(503)))
        let refused = policy("refused-stream")
        XCTAssertTrue(refused.isRetriable(.reset(refused: true)))
        XCTAssertFalse(refused.isRetriable(.reset(refused: false)))
    }

    func testStatusCodesHeadersRateLimitAnd4xx() {
        XCTAssertTrue(policy("retriable-status-codes", codes: [418]).isRetriable(response(418)))
        XCTAssertFalse(policy("retriable-status-codes", codes: [418]).isRetriable(response(503)))
        // Codes alone retry nothing without the condition that names them.
        XCTAssertFalse(policy("5xx", codes: [418]).isRetriable(response(418)))
        XCTAssertTrue(policy("retriable-4xx").isRetriable(response(409)))
        XCTAssertFalse(policy("retriable-4xx").isRetriable(response(404)))
        XCTAssertTrue(policy("envoy-ratelimited").isRetriable(response(429, [("x-envoy-ratelimited", "true")])))
        XCTAssertFalse(policy("envoy-ratelimited").isRetriable(response(429)))
        let byHeader = policy("retriable-headers", headers: [HeaderMatcher(name: "x-retry", exact: "yes")])
        XCTAssertTrue(byHeader.isRetriable(response(200, [("X-Retry", "yes")])))
        XCTAssertFalse(byHeader.isRetriable(response(200, [("x-retry", "no")])))
    }

    func testGRPCConditionsReadGrpcStatus() {
        let p = policy("cancelled,deadline-exceeded,internal,resource-exhausted,unavailable")
        for code in [1, 4, 8, 13, 14] { XCTAssertTrue(p.isRetriable(response(200, [("grpc-status", "\(code)")])), "\(code)") }
        for code in [0, 2, 3, 5, 16] { XCTAssertFalse(p.isRetriable(response(200, [("grpc-status", "\(code)")])), "\(code)") }
        XCTAssertFalse(policy("cancelled").isRetriable(response(200, [("grpc-status", "14")])))
    }

    func testOverloadedUpstreamIsNotRetried() {
        XCTAssertFalse(policy("5xx").isRetriable(response(503, [("x-envoy-overloaded", "true")])))
    }

    func testIstioDefaultPolicyRetries503AndConnectFailuresOnly() {
        let p = policy("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", codes: [503])
        XCTAssertTrue(p.isRetriable(response(503)))
        XCTAssertTrue(p.isRetriable(.connectFailure))
        XCTAssertTrue(p.isRetriable(.reset(refused: true)))
        XCTAssertTrue(p.isRetriable(response(200, [("grpc-status", "14")])))
        XCTAssertFalse(p.isRetriable(response(500)))
        XCTAssertFalse(p.isRetriable(.reset(refused: false)))
        XCTAssertFalse(p.isRetriable(.perTryTimeout))
    }

    func testBackoffIsJitteredExponentialAndCapped() {
        let p = policy("5xx")
        XCTAssertEqual(p.backoffBaseMs, 25)
        XCTAssertEqual(p.backoffMaxMs, 250)
        // The random source is asked for a bound; the largest value it may return is bound − 1.
        XCTAssertEqual(p.backoffMs(retry: 1) { $0 - 1 }, 24)
        XCTAssertEqual(p.backoffMs(retry: 2) { $0 - 1 }, 74)
        XCTAssertEqual(p.backoffMs(retry: 3) { $0 - 1 }, 174)
        XCTAssertEqual(p.backoffMs(retry: 4) { $0 - 1 }, 249)
        XCTAssertEqual(p.backoffMs(retry: 60) { $0 - 1 }, 249)
        XCTAssertEqual(p.backoffMs(retry: 1) { _ in 0 }, 0)
        for n in 1...8 {
            for _ in 0..<50 { XCTAssertLessThan(p.backoffMs(retry: n), 250) }
        }
    }

    func testStateRetriesUntilTheLimitThenSaysURX() {
        var state = RetryState(policy: policy("5xx", retries: 2))
        XCTAssertEqual(state.decide(response(503), canReplay: true, acquireBudget: { true }, random: { _ in 7 }),
                       .retry(backoffMs: 7))
        XCTAssertEqual(state.decide(.reset(refused: false), canReplay: true, acquireBudget: { true }, random: { _ in 9 }),
                       .retry(backoffMs: 9))
        XCTAssertEqual(state.decide(response(503), canReplay: true, acquireBudget: { true }), .limitExceeded)
        XCTAssertEqual(state.retriesMade, 2)
    }

    func testStateNeitherRetriesNorCountsWhatIsNotRetriable() {
        var state = RetryState(policy: policy("5xx"))
        var asked = false
        XCTAssertEqual(state.decide(response(200), canReplay: true, acquireBudget: { asked = true; return true }), .no)
        XCTAssertEqual(state.decide(response(503), canReplay: false, acquireBudget: { asked = true; return true }), .no)
        XCTAssertFalse(asked)
        XCTAssertEqual(state.retriesMade, 0)
    }

    func testStateOverflowsWhenTheBudgetIsFull() {
        var state = RetryState(policy: policy("5xx"))
        XCTAssertEqual(state.decide(response(503), canReplay: true, acquireBudget: { false }), .overflow)
        XCTAssertEqual(state.retriesMade, 0)
    }

    func testBudgetBoundsOutstandingRetriesPerCluster() {
        let budget = RetryBudget()
        XCTAssertTrue(budget.acquire(cluster: "a", max: 2))
        XCTAssertTrue(budget.acquire(cluster: "a", max: 2))
        XCTAssertFalse(budget.acquire(cluster: "a", max: 2))
        XCTAssertTrue(budget.acquire(cluster: "b", max: 2))
        budget.release(cluster: "a")
        XCTAssertEqual(budget.outstanding(cluster: "a"), 1)
        XCTAssertTrue(budget.acquire(cluster: "a", max: 2))
    }

    func testReplayKeepsTheBodyUpToTheLimit() {
        var replay = RequestReplay(limit: 10)
        XCTAssertFalse(replay.append(ByteBuffer(string: "hello"), inFlight: true))
        XCTAssertFalse(replay.append(ByteBuffer(string: "world"), inFlight: true))
        XCTAssertTrue(replay.canReplay)
        XCTAssertEqual(replay.body.map { String(buffer: $0) }, "helloworld")
        XCTAssertTrue(replay.append(ByteBuffer(string: "!"), inFlight: true))
        XCTAssertFalse(replay.canReplay)
        XCTAssertNil(replay.body)
        XCTAssertFalse(replay.append(ByteBuffer(string: "more"), inFlight: true))
    }

    func testReplayOverTheLimitWithNothingInFlightKeepsTheDataForTheNextAttempt() {
        var replay = RequestReplay(limit: 4)
        XCTAssertFalse(replay.append(ByteBuffer(string: "abc"), inFlight: true))
        XCTAssertTrue(replay.append(ByteBuffer(string: "de"), inFlight: false))
        XCTAssertFalse(replay.append(ByteBuffer(string: "f"), inFlight: false))
        XCTAssertFalse(replay.canReplay)
        XCTAssertEqual(replay.body.map { String(buffer: $0) }, "abcdef")
        replay.replayed()
        XCTAssertNil(replay.body)
    }

    func testShadowAuthoritySuffixesTheHostBeforeThePort() {
        XCTAssertEqual(ShadowRequest.shadowAuthority("reviews"), "reviews-shadow")
        XCTAssertEqual(ShadowRequest.shadowAuthority("reviews:9080"), "reviews-shadow:9080")
        XCTAssertEqual(ShadowRequest.shadowAuthority("[::1]:80"), "[::1]-shadow:80")
        XCTAssertEqual(ShadowRequest.shadowAuthority("[::1]"), "[::1]-shadow")
    }

    func testSnapshotRefusesWhatTheRouterWouldNotEnforce() throws {
        func build(_ action: String) throws -> ProxySnapshot {
            try buildSnapshot("""
            listeners: [{name: l, address: 127.0.0.1, port: 1, routeConfig: rc}]
            clusters: [{name: a, endpoints: [{address: 127.0.0.1, port: 1}]}]
            routeConfigs:
              - name: rc
                virtualHosts:
                  - name: all
                    domains: ["*"]
                    routes: [{match: {prefix: /}, route: \(action)}]
            """)
        }
        XCTAssertNoThrow(try build("{cluster: a, retryPolicy: {retryOn: '5xx,reset', numRetries: 3}, requestMirrorPolicies: [{cluster: a, percent: 50}]}"))
        XCTAssertThrowsError(try build("{cluster: a, retryPolicy: {retryOn: '5xx,sometimes'}}")) { error in
            XCTAssertTrue("\(error)".contains("retryPolicy.retryOn"), "\(error)")
        }
        XCTAssertThrowsError(try build("{cluster: a, requestMirrorPolicies: [{cluster: nope}]}")) { error in
            XCTAssertTrue("\(error)".contains("unknown cluster 'nope'"), "\(error)")
        }
        XCTAssertThrowsError(try build("{cluster: a, requestMirrorPolicies: [{cluster: a, percent: 150}]}"))
        XCTAssertThrowsError(try build("{cluster: a, retryPolicy: {retryOn: retriable-headers, retriableHeaders: [{name: x, safeRegex: a.*}]}}"))
    }

    /// Envoy's previous_priorities with Istio's update_frequency 2: the first retry keeps the
    /// original load; from the second attempt count on (and at each multiple), the priorities
    /// tried are left out, and stay out.
    func testPreviousPrioritiesExcludeWhatWasTriedEveryUpdateFrequencyAttempts() {
        var p = PreviousPriorities(updateFrequency: 2)
        XCTAssertEqual(p.exclusionForNextAttempt(), [])
        p.attempted(priority: 0)
        XCTAssertEqual(p.exclusionForNextAttempt(), [])
        p.attempted(priority: 0)
        XCTAssertEqual(p.exclusionForNextAttempt(), [0])
        p.attempted(priority: 1)
        XCTAssertEqual(p.exclusionForNextAttempt(), [0], "between updates the last exclusion holds")
        p.attempted(priority: 2)
        XCTAssertEqual(p.exclusionForNextAttempt(), [0, 1, 2])
        XCTAssertEqual(CompiledRetryPolicy(RetryPolicy(retryOn: "5xx", previousPrioritiesUpdateFrequency: 2))
            .previousPrioritiesUpdateFrequency, 2)
        XCTAssertNil(CompiledRetryPolicy(RetryPolicy(retryOn: "5xx")).previousPrioritiesUpdateFrequency)
    }
}
