import NIOCore

/// A connection whose written bytes `LoopFlushBatch` flushes later.
package protocol DeferredFlushTarget: AnyObject {
    func flushDeferred()
}

/// Flushes gathered while the event loop works through one batch of I/O events, done
/// together after it (one task per batch, not one per write). A downstream read that starts
/// several upstream requests (the streams of one HTTP/2 read, the clients of one epoll
/// wakeup) then writes them to their upstream sockets back to back, so a sleeping upstream is
/// woken once for all of them instead of once per request; each wakeup costs both processes
/// a context switch. One per event loop; used on that loop only.
package final class LoopFlushBatch {
    private let eventLoop: EventLoop
    private var pending: [DeferredFlushTarget] = []
    private var spare: [DeferredFlushTarget] = []
    private var scheduled = false

    package init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Flushes `target` once the loop has handled the events in hand.
    package func flushSoon(_ target: DeferredFlushTarget) {
        pending.append(target)
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in run() }
    }

    private func run() {
        scheduled = false
        // Swapped out first: a flush may defer another (it is taken by the next task).
        var targets = spare
        swap(&targets, &pending)
        for target in targets { target.flushDeferred() }
        targets.removeAll(keepingCapacity: true)
        spare = targets
    }
}
