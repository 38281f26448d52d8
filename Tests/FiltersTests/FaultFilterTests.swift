@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOCore
import NIOEmbedded
import NIOPosix
import Transport
import XCTest

final class FaultFilterTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    /// A listener with the fault filter (no fault of its own) and routes with their own faults.
    private func yaml(_ routeFault: String, listener: String = "{}") -> String {
        """
        listeners:
          - {name: main, address: 127.0.0.1, port: 8080, routeConfig: rc, httpFilters: [{name: meshd.fault, config: \(listener)}]}
        clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 9}]}]
        routeConfigs:
          - name: rc
            virtualHosts:
              - name: api
                domains: ["*"]
                routes:
                  - {name: faulty, match: {prefix: /faulty}, route: {cluster: c}, perFilterConfig: {meshd.fault: \(routeFault)}}
                  - {name: plain, match: {prefix: /}, route: {cluster: c}}
        """
    }

    private func harness(_ routeFault: String, listener: String = "{}", path: String = "/faulty",
                         on loop: EventLoop? = nil) throws -> ChainHarness {
        let snapshot = try buildSnapshot(yaml(routeFault, listener: listener))
        let s = try ChainHarness(eventLoop: loop ?? self.loop, factories: snapshot.filterChains["main"]!, bootstrap: snapshot.bootstrap)
        s.route = s.snapshot.routeTables["rc"]!.select(authority: "a", path: path, method: "GET", headers: [:])
        return s
    }

    func testAbortAnswersLocallyWithEnvoysBodyAndFlag() throws {
        let s = try harness("{abort: {httpStatus: 555, percentage: 100}}")
        s.sendRequest(path: "/faulty")
        XCTAssertNil(s.upstreamHead, "an aborted request never reaches the upstream")
        XCTAssertEqual(s.localReply?.status, 555)
        XCTAssertEqual(s.localReply?.body, "fault filter abort")
        XCTAssertEqual(s.streamInfo.flagsString, "FI")
        XCTAssertEqual(s.counters.values[FaultFilter.abortsKey], 1)
        XCTAssertNil(s.counters.values[FaultFilter.delaysKey])
    }

    func testNoFaultOnOtherRoutesAndZeroPercentNeverFires() throws {
        let other = try harness("{abort: {httpStatus: 503, percentage: 100}}", path: "/")
        other.sendRequest(path: "/")
        XCTAssertNotNil(other.upstreamHead)
        XCTAssertNil(other.localReply)

        for fault in ["{abort: {httpStatus: 503}}", "{abort: {httpStatus: 503, percentage: 0}}",
                      "{delay: {fixedDelayMs: 5000, percentage: 0}}"] {
            let s = try harness(fault)
            s.sendRequest(path: "/faulty")
            XCTAssertNotNil(s.upstreamHead, fault)
            XCTAssertNil(s.localReply, fault)
            XCTAssertEqual(s.streamInfo.flagsString, "-", fault)
        }
    }

    func testTheRoutesFaultReplacesTheListeners() throws {
        let listener = "{abort: {httpStatus: 418, percentage: 100}}"
        let plain = try harness("{abort: {httpStatus: 503, percentage: 100}}", listener: listener, path: "/")
        plain.sendRequest(path: "/")
        XCTAssertEqual(plain.localReply?.status, 418, "a route without its own fault gets the listener's")
        let faulty = try harness("{abort: {httpStatus: 503, percentage: 100}}", listener: listener)
        faulty.sendRequest(path: "/faulty")
        XCTAssertEqual(faulty.localReply?.status, 503)
    }

    func testFractionalPercentagesAreKeptPerMillion() throws {
        XCTAssertEqual(try FaultConfig(.object(["abort": .object(["httpStatus": .number(500), "percentage": .number(0.1)])])).abort?.perMillion, 1000)
        // 0.5 % of 200,000 rolls: about 1,000 (six standard deviations either side).
        let hits = (0..<200_000).reduce(0) { n, _ in FaultFilter.fires(5000) ? n + 1 : n }
        XCTAssertTrue((810...1190).contains(hits), "\(hits)")
        XCTAssertTrue(FaultFilter.fires(1_000_000))
        XCTAssertFalse(FaultFilter.fires(0))
    }

    func testGRPCAbortIsATrailersOnlyResponse() throws {
        let grpc = [("content-type", "application/grpc")]
        let s = try harness("{abort: {grpcStatus: 14, percentage: 100}}")
        s.sendRequest(method: "POST", path: "/faulty", headers: grpc)
        XCTAssertEqual(s.localReply?.status, 200)
        XCTAssertEqual(s.localReply?.body, "", "trailers-only: the headers end the stream")
        XCTAssertEqual(s.clientHead?.headers.first(name: "grpc-status"), "14")
        XCTAssertEqual(s.clientHead?.headers.first(name: "grpc-message"), "fault filter abort")
        XCTAssertEqual(s.clientHead?.headers.first(name: "content-type"), "application/grpc")

        let http = try harness("{abort: {httpStatus: 503, percentage: 100}}")
        http.sendRequest(method: "POST", path: "/faulty", headers: [("content-type", "application/grpc+proto")])
        XCTAssertEqual(http.localReply?.status, 200)
        XCTAssertEqual(http.clientHead?.headers.first(name: "grpc-status"), "14", "503 maps to UNAVAILABLE")

        let plain = try harness("{abort: {grpcStatus: 14, percentage: 100}}")
        plain.sendRequest(path: "/faulty")
        XCTAssertEqual(plain.localReply?.status, 200, "a gRPC abort of a plain request: HTTP 200, as Envoy")
        XCTAssertEqual(plain.localReply?.body, "fault filter abort")
    }

    /// The delay runs on the loop's timers: the request (and its body) waits, the loop does
    /// not, and the request goes on once the timer fires.
    func testDelayHoldsTheRequestOnALoopTimer() throws {
        let result = try onRealLoop(fault: "{delay: {fixedDelayMs: 150, percentage: 100}}")
        XCTAssertFalse(result.reachedAtOnce)
        XCTAssertTrue(result.loopFree, "the loop runs other work while the request waits")
        XCTAssertGreaterThanOrEqual(result.elapsedMs, 150)
        XCTAssertEqual(result.upstreamBody, "payload")
        XCTAssertNil(result.status)
        XCTAssertEqual(result.flags, "DI")
        XCTAssertEqual(result.delays, 1)
    }

    func testDelayThenAbort() throws {
        let result = try onRealLoop(fault: "{delay: {fixedDelayMs: 100, percentage: 100}, abort: {httpStatus: 500, percentage: 100}}")
        XCTAssertGreaterThanOrEqual(result.elapsedMs, 100)
        XCTAssertEqual(result.status, 500)
        XCTAssertNil(result.upstreamBody)
        XCTAssertEqual(result.flags, "DI,FI")
    }

    func testAStreamEndingDuringTheDelayCancelsItsTimer() throws {
        let s = try harness("{delay: {fixedDelayMs: 60000, percentage: 100}}")
        s.sendRequest(path: "/faulty")
        XCTAssertEqual(s.timers.counts.live, 1)
        s.complete()
        XCTAssertEqual(s.timers.counts.live, 0)
        XCTAssertNil(s.upstreamHead)
    }

    func testBadConfigNamesTheFieldPath() {
        let cases = [
            ("{abort: {httpStatus: 99, percentage: 100}}", "abort.httpStatus"),
            ("{abort: {percentage: 100}}", "abort"),
            ("{abort: {httpStatus: 500, grpcStatus: 2}}", "abort"),
            ("{delay: {fixedDelayMs: 10, percentage: 101}}", "delay.percentage"),
            ("{delay: {percentage: 10}}", "delay.fixedDelayMs"),
            ("{delai: {}}", "delai"),
        ]
        for (fault, path) in cases {
            XCTAssertThrowsError(try buildSnapshot(yaml(fault)), fault) {
                XCTAssertEqual(($0 as? ConfigError)?.path,
                               "routeConfigs[0].virtualHosts[0].routes[0].perFilterConfig.meshd.fault." + path, fault)
            }
        }
    }

    // MARK: on a real loop

    private struct Outcome: Sendable {
        var reachedAtOnce: Bool
        var loopFree: Bool
        var elapsedMs: Int64
        var upstreamBody: String?
        var status: Int?
        var flags: String
        var delays: Int?
    }

    /// Sends a request with a body through the fault on a real loop and waits (polling on the
    /// loop, bounded at 10 s) until it reaches the upstream or is answered.
    private func onRealLoop(fault: String) throws -> Outcome {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let snapshot = try buildSnapshot(yaml(fault))
        let promise = loop.makePromise(of: Outcome.self)
        try loop.submit {
            let s = try ChainHarness(eventLoop: loop, factories: snapshot.filterChains["main"]!, bootstrap: snapshot.bootstrap)
            s.route = s.snapshot.routeTables["rc"]!.select(authority: "a", path: "/faulty", method: "POST", headers: [:])
            let start = NIODeadline.now()
            s.sendRequest(method: "POST", path: "/faulty", body: ["payload"])
            var outcome = Outcome(reachedAtOnce: s.upstreamHead != nil, loopFree: false, elapsedMs: 0, flags: "")
            loop.assumeIsolated().execute { outcome.loopFree = s.upstreamHead == nil && s.localReply == nil }
            func poll(_ round: Int) {
                guard (s.upstreamEnded || s.localReply != nil) || round >= 2000 else {
                    loop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { poll(round + 1) }
                    return
                }
                outcome.elapsedMs = (NIODeadline.now() - start).nanoseconds / 1_000_000
                outcome.upstreamBody = s.upstreamEnded ? s.upstreamBodyString : nil
                outcome.status = s.localReply?.status
                outcome.flags = s.streamInfo.flagsString
                outcome.delays = s.counters.values[FaultFilter.delaysKey]
                s.complete()
                promise.succeed(outcome)
            }
            poll(0)
        }.wait()
        return try promise.futureResult.wait()
    }
}
