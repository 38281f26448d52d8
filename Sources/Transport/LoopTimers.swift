import NIOCore
import MeshAPI

/// Something a `LoopTimers` entry calls back when its time is up.
public protocol TimerTarget: AnyObject {
    func timerFired(_ token: LoopTimers.Token)
}

/// Timeouts for one event loop, cheap enough to arm and cancel on every request.
/// Entries with the same duration expire in the order they were armed, so each duration
/// keeps a FIFO and only its head is scheduled with the loop: arming is an append,
/// cancelling is an O(1) slot clear, and the loop sees one scheduled task per duration
/// rather than one per request.
public final class LoopTimers {
    public struct Token: Equatable {
        fileprivate let nanos: Int64
        fileprivate let id: Int
    }

    private final class Queue {
        package let duration: TimeAmount
        package var entries: [(deadline: NIODeadline, target: TimerTarget?)] = []
        package var head = 0
        package var firstID = 0
        package var scheduled: NIODeadline?

        package init(duration: TimeAmount) { self.duration = duration }
    }

    private let eventLoop: EventLoop
    private var queues: [Int64: Queue] = [:]

    public init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    public func arm(after duration: TimeAmount, _ target: TimerTarget) -> Token {
        let q = queue(for: duration)
        let id = q.firstID + (q.entries.count - q.head)
        q.entries.append((.now() + duration, target))
        schedule(q)
        return Token(nanos: duration.nanoseconds, id: id)
    }

    public func cancel(_ token: Token?) {
        guard let token, let q = queues[token.nanos] else { return }
        let index = q.head + (token.id - q.firstID)
        guard token.id >= q.firstID, index < q.entries.count else { return }
        q.entries[index].target = nil
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
            let token = Token(nanos: q.duration.nanoseconds, id: q.firstID)
            q.entries[q.head].target = nil
            q.head += 1
            q.firstID += 1
            entry.target?.timerFired(token)
        }
        if q.head > 1024, q.head * 2 > q.entries.count {
            q.entries.removeFirst(q.head)
            q.head = 0
        }
        schedule(q)
    }
}
