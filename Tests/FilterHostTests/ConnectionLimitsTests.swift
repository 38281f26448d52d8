@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import Transport
import XCTest

/// The pieces behind the connection limits that can be checked without sockets
/// (tests/integration/test_connection_limits.py and test_http2_abuse.py drive them for real).
final class ConnectionLimitsTests: XCTestCase {
    private final class Target: TimerTarget {
        var fired = 0
        func timerFired(_ token: LoopTimers.Token) { fired += 1 }
    }

    /// A keep-alive request arms and cancels an idle timer; the slots must not pile up
    /// for the whole idle timeout (300 s) after they are cancelled.
    func testCancelledTimersDoNotAccumulate() {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        let target = Target()
        let live = (0..<10).map { _ in timers.arm(after: .seconds(300), target) }
        for _ in 0..<10_000 {
            timers.cancel(timers.arm(after: .seconds(300), target))
        }
        XCTAssertEqual(timers.counts.live, 10)
        XCTAssertLessThan(timers.counts.stored, 200)
        // The live ones still fire, on time.
        loop.advanceTime(by: .seconds(299))
        XCTAssertEqual(target.fired, 0)
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(target.fired, 10)
        XCTAssertEqual(timers.counts.stored, 0)
        _ = live
    }

    /// A timer counted from an earlier start fires then, unless a later-armed one is ahead
    /// of it in the queue: then no later than a timer armed now.
    func testTimerArmedFromAnEarlierStart() {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        let target = Target()
        let accepted = NIODeadline.now()
        loop.advanceTime(by: .seconds(4))
        _ = timers.arm(after: .seconds(10), from: accepted, target)
        loop.advanceTime(by: .seconds(6))
        XCTAssertEqual(target.fired, 1)
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
