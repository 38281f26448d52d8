@testable import FilterHost
import MeshAPI
import NIOCore
import NIOPosix
import Transport
import XCTest

/// The pieces behind the connection limits that can be checked without sockets
/// (tests/integration/test_connection_limits.py and test_http2_abuse.py drive them for real).
final class ConnectionLimitsTests: XCTestCase {
    private final class Target: TimerTarget {
        var fired: [NIODeadline] = []
        func timerFired(_ token: LoopTimers.Token) { fired.append(.now()) }
    }

    /// A keep-alive request arms and cancels an idle timer; the slots must not pile up
    /// for the whole idle timeout (300 s) after they are cancelled.
    func testCancelledTimersDoNotAccumulate() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let counts = try loop.submit { () -> (Int, Int) in
            let timers = LoopTimers(eventLoop: loop)
            let target = Target()
            for _ in 0..<10 { _ = timers.arm(after: .seconds(300), target) }
            for _ in 0..<10_000 { timers.cancel(timers.arm(after: .seconds(300), target)) }
            return timers.counts
        }.wait()
        XCTAssertEqual(counts.0, 10)
        XCTAssertLessThan(counts.1, 200)
    }

    /// Cancelling finds its entry by id before a compaction (ids consecutive) and after one
    /// (ids with gaps), in any order; a second cancel of the same token changes nothing.
    func testCancelFindsEntriesAcrossCompactions() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let live = try loop.submit { () -> [Int] in
            let timers = LoopTimers(eventLoop: loop)
            let target = Target()
            let tokens = (0..<200).map { _ in timers.arm(after: .seconds(300), target) }
            var live: [Int] = []
            // 133 cancels: a compaction comes after the 101st and leaves gaps in the ids.
            for i in 0..<200 where i % 3 != 0 { timers.cancel(tokens[i]) }
            live.append(timers.counts.live)
            timers.cancel(tokens[1])
            live.append(timers.counts.live)
            for i in stride(from: 198, through: 0, by: -3) { timers.cancel(tokens[i]) }
            live.append(timers.counts.live)
            return live
        }.wait()
        XCTAssertEqual(live, [67, 67, 0])
    }

    /// Timers fire on time after compactions, and one counted from an earlier start
    /// (a connection's accept) fires that much sooner.
    func testTimersFireOnTime() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let start = NIODeadline.now()
        let (fired, stored) = try loop.submit { () -> EventLoopFuture<([NIODeadline], Int)> in
            let timers = LoopTimers(eventLoop: loop)
            let target = Target()
            _ = timers.arm(after: .milliseconds(300), from: start - .milliseconds(200), target)
            for _ in 0..<1_000 { timers.cancel(timers.arm(after: .milliseconds(300), target)) }
            _ = timers.arm(after: .milliseconds(300), target)
            return loop.assumeIsolated().scheduleTask(in: .milliseconds(600)) {
                (target.fired, timers.counts.stored)
            }.futureResult
        }.wait().wait()
        XCTAssertEqual(fired.count, 2)
        XCTAssertLessThan(fired[0] - start, .milliseconds(250))
        XCTAssertGreaterThanOrEqual(fired[1] - start, .milliseconds(300))
        XCTAssertEqual(stored, 0)
    }

    func testEmptyFrameLimit() {
        var counter = HTTP2FloodCounter(limits: HTTP2FrameLimits())
        XCTAssertNil(counter.received(type: H2.headers, payload: 20, endStream: false, endHeaders: true))
        XCTAssertNil(counter.received(type: H2.data, payload: 0, endStream: false, endHeaders: false))
        XCTAssertNil(counter.received(type: H2.data, payload: 5, endStream: false, endHeaders: false))
        XCTAssertNil(counter.received(type: H2.data, payload: 0, endStream: false, endHeaders: false))
        // An empty frame that ends the stream is not abuse.
        XCTAssertNil(counter.received(type: H2.data, payload: 0, endStream: true, endHeaders: false))
        XCTAssertNil(counter.received(type: H2.data, payload: 0, endStream: false, endHeaders: false))
        XCTAssertEqual(counter.received(type: H2.data, payload: 0, endStream: false, endHeaders: false), .emptyFrames)
    }

    func testPriorityLimitGrowsWithStreams() {
        var counter = HTTP2FloodCounter(limits: HTTP2FrameLimits())
        for _ in 0..<100 { XCTAssertNil(counter.received(type: H2.priority, payload: 5, endStream: false, endHeaders: false)) }
        XCTAssertNil(counter.received(type: H2.headers, payload: 20, endStream: true, endHeaders: true))
        for _ in 0..<100 { XCTAssertNil(counter.received(type: H2.priority, payload: 5, endStream: false, endHeaders: false)) }
        XCTAssertEqual(counter.received(type: H2.priority, payload: 5, endStream: false, endHeaders: false), .priorityFrames)
    }

    func testWindowUpdateLimitFollowsDataSent() {
        var counter = HTTP2FloodCounter(limits: HTTP2FrameLimits())
        XCTAssertNil(counter.received(type: H2.windowUpdate, payload: 4, endStream: false, endHeaders: false))
        counter.dataFrameSent()
        // 1 + 2 * (0 streams + 10 * 1 DATA frame) = 21 allowed in all.
        for _ in 0..<20 { XCTAssertNil(counter.received(type: H2.windowUpdate, payload: 4, endStream: false, endHeaders: false)) }
        XCTAssertEqual(counter.received(type: H2.windowUpdate, payload: 4, endStream: false, endHeaders: false), .windowUpdateFrames)
    }

    func testLimitsDefaultsAndValidation() throws {
        let limits = ListenerLimits(Listener(name: "l", address: "127.0.0.1", port: 1, routeConfig: "rc"))
        XCTAssertEqual(limits.timeouts.requestHeaders, .seconds(10))
        XCTAssertEqual(limits.timeouts.idle, .seconds(300))
        XCTAssertNil(limits.maxConnections)
        XCTAssertEqual(limits.http2.frameLimits.maxConsecutiveInboundFramesWithEmptyPayload, 1)
        XCTAssertEqual(limits.http2.frameLimits.maxInboundPriorityFramesPerStream, 100)
        XCTAssertEqual(limits.http2.frameLimits.maxInboundWindowUpdateFramesPerDataFrameSent, 10)
        let yaml = """
        listeners: [{name: l, address: 127.0.0.1, port: 1, routeConfig: rc, maxConnections: 0}]
        routeConfigs: [{name: rc, virtualHosts: []}]
        """
        XCTAssertThrowsError(try buildSnapshot(yaml)) { error in
            XCTAssertEqual((error as? ConfigError)?.path, "listeners[0].maxConnections")
        }
    }
}
