import NIOCore
import Transport

/// Everything one event loop owns: the snapshot it hands to new streams, its upstream
/// pools, counters and access-log buffer. Touched only on its loop, so no locks.
public final class LoopContext {
    public let eventLoop: EventLoop
    var snapshot: ProxySnapshot
    let pools: UpstreamPools
    let timers: LoopTimers
    let stats: LoopStats
    var requestIDs = RequestIDGenerator()
    let accessLog: AccessLogWriter
    /// The process's tracer; nil: no trace propagation or spans.
    let tracer: Tracer?
    /// The overload actions in force, pushed by `OverloadManager` when they change.
    var overload: OverloadActions = []
    /// Completed filter chains kept for the next streams: a chain, its two iterators and
    /// their arrays are five allocations a stream no longer makes.
    private var spareChains: [FilterChain] = []
    static let maxSpareChains = 256

    init(eventLoop: EventLoop, snapshot: ProxySnapshot, accessLog: AccessLogWriter, tracer: Tracer? = nil) {
        self.eventLoop = eventLoop
        self.snapshot = snapshot
        self.timers = LoopTimers(eventLoop: eventLoop)
        self.stats = LoopStats()
        self.pools = UpstreamPools(eventLoop: eventLoop, timers: timers, stats: stats)
        self.accessLog = accessLog
        self.tracer = tracer
    }

    /// A chain for a new stream: a spare one when there is one no caller up the stack is
    /// still running through, else a new one. `makeFilters` appends the stream's filters.
    func filterChain(bufferLimit: Int, ends: FilterChainEnds, makeFilters: (inout [HTTPFilter]) -> Void) -> FilterChain {
        if let i = spareChains.lastIndex(where: \.isReusable) {
            spareChains.swapAt(i, spareChains.count - 1)
            let chain = spareChains.removeLast()
            chain.reuse(bufferLimit: bufferLimit, ends: ends, makeFilters: makeFilters)
            return chain
        }
        var filters: [HTTPFilter] = []
        makeFilters(&filters)
        return FilterChain(filters: filters, bufferLimit: bufferLimit, ends: ends)
    }

    /// Takes back a completed chain. Nothing but the loop may refer to it any more: its
    /// stream dropped it, so a late callback (a Lua httpCall answering after the stream
    /// ended) reaches the old stream, never the chain's next one.
    func recycle(_ chain: FilterChain) {
        guard spareChains.count < Self.maxSpareChains else { return }
        spareChains.append(chain)
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
