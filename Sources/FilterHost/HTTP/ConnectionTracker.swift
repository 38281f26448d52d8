import NIOConcurrencyHelpers
import NIOCore
import Transport

/// Knows every open downstream connection, so a drain can reach them, the admin server can
/// count them, and a new one can be refused when its listener or the process is full.
/// Touched on connect and close only, never per request.
final class ConnectionTracker: Sendable {
    private struct Entry {
        let channel: Channel
        let listener: String
        var drain: (@Sendable () -> Void)?
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var active: [String: Int] = [:]
        var totals: [String: Int] = [:]
        var overflows: [String: Int] = [:]
        /// Refused connections still being answered (see `ConnectionRefusal`).
        var refusing = 0
    }

    /// Open downstream connections allowed across all listeners (the process's budget).
    let processLimit: Int
    private let state = NIOLockedValueBox(State())

    init(processLimit: Int = ConnectionBudget.defaultDownstreamLimit) {
        self.processLimit = processLimit
    }

    enum Admission {
        case admitted
        /// Refused; `answer` says whether a refusal may still be written (few are at once).
        case refused(answer: Bool)
    }

    /// Registers a new connection unless `listener` already has `limit` open (when set) or
    /// the process has `processLimit` (or `globalLimit`, the overload manager's connection
    /// monitor's maximum, when lower); a refused one is counted as that listener's overflow.
    func admit(_ channel: Channel, listener: String, limit: Int?, globalLimit: Int? = nil) -> Admission {
        let id = ObjectIdentifier(channel)
        let processCap = min(processLimit, globalLimit ?? Int.max)
        let admitted = state.withLockedValue { s -> Admission in
            let open = s.active[listener, default: 0]
            if open >= (limit ?? Int.max) || s.entries.count >= processCap {
                s.overflows[listener, default: 0] += 1
                guard s.refusing < ConnectionRefusal.maxAnswering else { return .refused(answer: false) }
                s.refusing += 1
                return .refused(answer: true)
            }
            s.entries[id] = Entry(channel: channel, listener: listener)
            s.active[listener] = open + 1
            s.totals[listener, default: 0] += 1
            return .admitted
        }
        switch admitted {
        case .admitted:
            channel.closeFuture.whenComplete { [self] _ in
                state.withLockedValue { s in
                    if let e = s.entries.removeValue(forKey: id) { s.active[e.listener, default: 1] -= 1 }
                }
            }
        case .refused(answer: true):
            channel.closeFuture.whenComplete { [self] _ in state.withLockedValue { $0.refusing -= 1 } }
        case .refused(answer: false):
            break
        }
        return admitted
    }

    /// Registers how to drain a connection; the closure runs on the channel's loop.
    func setDrainer(_ channel: Channel, _ drain: @escaping () -> Void) {
        let bound = NIOLoopBound(drain, eventLoop: channel.eventLoop)
        state.withLockedValue { $0.entries[ObjectIdentifier(channel)]?.drain = { bound.value() } }
    }

    /// Asks every connection of `listener` (all when nil) to finish what it is doing and close.
    func drain(listener: String? = nil) {
        let targets = state.withLockedValue { Array($0.entries.values) }.filter { listener == nil || $0.listener == listener }
        for e in targets {
            e.channel.eventLoop.execute {
                if let d = e.drain { d() } else { e.channel.close(promise: nil) }
            }
        }
    }

    func activeCount(listener: String? = nil) -> Int {
        state.withLockedValue { s in listener.map { s.active[$0, default: 0] } ?? s.entries.count }
    }

    var activeByListener: [String: Int] { state.withLockedValue { $0.active } }

    var totalByListener: [String: Int] { state.withLockedValue { $0.totals } }

    /// Admin /reset_counters: the connection counters back to zero (the open counts stay).
    func resetCounters() {
        state.withLockedValue { s in
            for key in s.totals.keys { s.totals[key] = 0 }
            for key in s.overflows.keys { s.overflows[key] = 0 }
        }
    }

    var overflowByListener: [String: Int] { state.withLockedValue { $0.overflows } }
}
