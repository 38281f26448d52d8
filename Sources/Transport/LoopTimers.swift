import NIOCore
import MeshAPI

/// Something a `LoopTimers` entry calls back when its time is up.
public protocol TimerTarget: AnyObject {
    func timerFired(_ token: LoopTimers.Token)
}

/// Timeouts for one event loop, cheap enough to arm and cancel on every request.
/// Entries with the same duration expire in the order they were armed, so each duration
/// keeps a FIFO and only its head is scheduled with the loop: arming is an append,
/// cancelling a lookup by id offset (a binary search after a compaction) and a slot clear,
/// and the loop sees one scheduled task per duration rather than one per request. Cancelled slots are dropped as soon as they
/// outnumber the live ones, so memory follows the timers armed, not the timers ever armed
/// within one duration (a keep-alive request arms and cancels one per exchange).
public final class LoopTimers {
    public struct Token: Equatable {
        fileprivate let nanos: Int64
        fileprivate let id: Int
    }

    private struct Entry {
        let id: Int
        let deadline: NIODeadline
        var target: TimerTarget?
    }

    private final class Queue {
        let duration: TimeAmount
        /// Ordered by id and by deadline; `entries[..<head]` are spent.
        var entries: [Entry] = []
        var head = 0
        var nextID = 0
        /// Cancelled entries still stored at or after `head`.
        var cancelled = 0
        var scheduled: NIODeadline?

        init(duration: TimeAmount) { self.duration = duration }

        func index(of id: Int) -> Int? {
            // Ids are consecutive except where a compaction dropped entries: those armed since
            // the last compaction are found by their offset from the newest (most cancels are
            // of recent timers), the rest by their offset from the oldest when no compaction
            // came since, and otherwise by a binary search.
            if let last = entries.last {
                let guess = entries.count &- 1 &- (last.id &- id)
                if guess >= head, guess < entries.count, entries[guess].id == id { return guess }
                let fromFirst = id &- entries[0].id
                if fromFirst >= head, fromFirst < entries.count, entries[fromFirst].id == id { return fromFirst }
            }
            var low = head, high = entries.count
            while low < high {
                let mid = (low + high) / 2
                if entries[mid].id < id { low = mid + 1 } else { high = mid }
            }
            return low < entries.count && entries[low].id == id ? low : nil
        }

        /// Rebuilds the array without cancelled and spent slots once they dominate.
        func compactIfSparse() {
            let stored = entries.count - head
            guard cancelled > 64, cancelled * 2 > stored else { return }
            entries = entries[head...].filter { $0.target != nil }
            head = 0
            cancelled = 0
        }
    }

    private let eventLoop: EventLoop
    private var queues: [Int64: Queue] = [:]

    public init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    public func arm(after duration: TimeAmount, _ target: TimerTarget) -> Token {
        arm(after: duration, from: .now(), target)
    }

    /// Arms a timer counted from `start` (a connection's accept time, say) rather than now.
    /// A queue's deadlines stay ordered: one earlier than the last armed moves up to it, so
    /// the timer fires between its own deadline and the one a timer armed now would have.
    public func arm(after duration: TimeAmount, from start: NIODeadline, _ target: TimerTarget) -> Token {
        let q = queue(for: duration)
        var deadline = start + duration
        if q.head < q.entries.count, let last = q.entries.last, last.deadline > deadline { deadline = last.deadline }
        let id = q.nextID
        q.nextID += 1
        q.entries.append(Entry(id: id, deadline: deadline, target: target))
        schedule(q)
        return Token(nanos: duration.nanoseconds, id: id)
    }

    public func cancel(_ token: Token?) {
        guard let token, let q = queues[token.nanos], let index = q.index(of: token.id),
              q.entries[index].target != nil else { return }
        q.entries[index].target = nil
        q.cancelled += 1
        q.compactIfSparse()
    }

    /// Timers armed and not yet fired or cancelled, and slots stored (for tests).
    package var counts: (live: Int, stored: Int) {
        queues.values.reduce(into: (0, 0)) { total, q in
            total.0 += q.entries.count - q.head - q.cancelled
            total.1 += q.entries.count - q.head
        }
    }

    private func queue(for duration: TimeAmount) -> Queue {
        if let q = queues[duration.nanoseconds] { return q }
        let q = Queue(duration: duration)
        queues[duration.nanoseconds] = q
        return q
    }

    private func schedule(_ q: Queue) {
        guard q.scheduled == nil, q.head < q.entries.count else { return }
        let deadline = q.entries[q.head].deadline
        q.scheduled = deadline
        let bound = NIOLoopBound((self, q), eventLoop: eventLoop)
        eventLoop.scheduleTask(deadline: deadline) {
            let (timers, q) = bound.value
            q.scheduled = nil
            timers.expire(q)
        }
    }

    private func expire(_ q: Queue) {
        let now = NIODeadline.now()
        while q.head < q.entries.count, q.entries[q.head].deadline <= now || q.entries[q.head].target == nil {
            let entry = q.entries[q.head]
            q.entries[q.head].target = nil
            q.head += 1
            if entry.target == nil { q.cancelled -= 1 }
            entry.target?.timerFired(Token(nanos: q.duration.nanoseconds, id: entry.id))
        }
        if q.head == q.entries.count {
            q.entries = []
            q.head = 0
        } else if q.head > 1024, q.head * 2 > q.entries.count {
            q.entries = Array(q.entries[q.head...])
            q.head = 0
        }
        schedule(q)
    }
}
