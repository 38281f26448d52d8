import NIOCore
import Transport

/// Everything one event loop owns: the snapshot it hands to new streams, its upstream
/// pools, counters and access-log buffer. Touched only on its loop, so no locks.
public final class LoopContext {
    public let eventLoop: EventLoop
    var snapshot: ProxySnapshot
    let pools: UpstreamPools
    let timers: LoopTimers
    let stats = LoopStats()
    var requestIDs = RequestIDGenerator()
    let accessLog: AccessLogWriter
    /// The process's tracer; nil: no trace propagation or spans.
    let tracer: Tracer?
    /// The overload actions in force, pushed by `OverloadManager` when they change.
    var overload: OverloadActions = []

    init(eventLoop: EventLoop, snapshot: ProxySnapshot, accessLog: AccessLogWriter, tracer: Tracer? = nil) {
        self.eventLoop = eventLoop
        self.snapshot = snapshot
        self.timers = LoopTimers(eventLoop: eventLoop)
        self.pools = UpstreamPools(eventLoop: eventLoop, timers: timers)
        self.accessLog = accessLog
        self.tracer = tracer
    }
}

/// Hands a loop's `LoopContext` to code that runs on that loop. The map is immutable
/// after init and each context is only ever touched on its own loop (checked in debug),
/// which is what makes sharing the map safe.
final class LoopContexts: @unchecked Sendable {
    private let byLoop: [ObjectIdentifier: LoopContext]

    init(_ contexts: [LoopContext]) {
        var map: [ObjectIdentifier: LoopContext] = [:]
        for c in contexts { map[ObjectIdentifier(c.eventLoop)] = c }
        byLoop = map
    }

    /// Must be called on `loop`.
    func context(for loop: EventLoop) -> LoopContext {
        loop.assertInEventLoop()
        return byLoop[ObjectIdentifier(loop)]!
    }

    /// Runs `body` on every loop with its context; completes when all have run.
    func forEach<T: Sendable>(_ body: @escaping @Sendable (LoopContext) -> T) -> EventLoopFuture<[T]> {
        let futures = byLoop.values.map { ctx in
            let loop = ctx.eventLoop
            return loop.submit { body(self.context(for: loop)) }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: futures[0].eventLoop)
    }
}
