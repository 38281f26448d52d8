import NIOCore
import NIOEmbedded
import XCTest
import Transport

final class LoopFlushBatchTests: XCTestCase {
    private final class Target: DeferredFlushTarget {
        let name: String
        var onFlush: (() -> Void)?
        init(_ name: String) { self.name = name }
        func flushDeferred() {
            Self.order.append(name)
            onFlush?()
        }
        nonisolated(unsafe) static var order: [String] = []
    }

    func testFlushesWaitForTheEndOfTheBatchAndRunInOrder() {
        let loop = EmbeddedEventLoop()
        let batch = LoopFlushBatch(eventLoop: loop)
        let a = Target("a"), b = Target("b")
        Target.order = []
        batch.flushSoon(a)
        batch.flushSoon(b)
        batch.flushSoon(a)
        XCTAssertEqual(Target.order, [], "nothing is flushed while the batch is being handled")
        loop.run()
        XCTAssertEqual(Target.order, ["a", "b", "a"])
        loop.run()
        XCTAssertEqual(Target.order, ["a", "b", "a"], "each request is flushed once")
    }

    func testAFlushDeferredDuringARunGoesToTheNextTask() {
        let loop = EmbeddedEventLoop()
        let batch = LoopFlushBatch(eventLoop: loop)
        let a = Target("a"), b = Target("b")
        Target.order = []
        a.onFlush = { [unowned batch] in
            a.onFlush = nil
            batch.flushSoon(b)
        }
        batch.flushSoon(a)
        loop.run()
        // EmbeddedEventLoop runs tasks scheduled by a task in the same run().
        XCTAssertEqual(Target.order, ["a", "b"])
        batch.flushSoon(a)
        loop.run()
        XCTAssertEqual(Target.order, ["a", "b", "a"])
    }
}
