import NIOConcurrencyHelpers
import NIOCore
import Transport

/// Knows every open downstream connection, so a drain can reach them and the admin
/// server can count them. Touched on connect and close only, never per request.
final class ConnectionTracker: Sendable {
    private struct Entry {
        let channel: Channel
        let listener: String
        var drain: (@Sendable () -> Void)?
    }
    private let entries = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])
    private let totals = NIOLockedValueBox<[String: Int]>([:])

    func opened(_ channel: Channel, listener: String) {
        let id = ObjectIdentifier(channel)
        entries.withLockedValue { $0[id] = Entry(channel: channel, listener: listener) }
        totals.withLockedValue { $0[listener, default: 0] += 1 }
        channel.closeFuture.whenComplete { [self] _ in
            _ = entries.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    /// Registers how to drain a connection; the closure runs on the channel's loop.
    func setDrainer(_ channel: Channel, _ drain: @escaping () -> Void) {
        let bound = NIOLoopBound(drain, eventLoop: channel.eventLoop)
        entries.withLockedValue { $0[ObjectIdentifier(channel)]?.drain = { bound.value() } }
    }

    /// Asks every connection of `listener` (all when nil) to finish what it is doing and close.
    func drain(listener: String? = nil) {
        let targets = entries.withLockedValue { Array($0.values) }.filter { listener == nil || $0.listener == listener }
        for e in targets {
            e.channel.eventLoop.execute {
                if let d = e.drain { d() } else { e.channel.close(promise: nil) }
            }
        }
    }

    func activeCount(listener: String? = nil) -> Int {
        entries.withLockedValue { $0.values.filter { listener == nil || $0.listener == listener }.count }
    }

    var activeByListener: [String: Int] {
        entries.withLockedValue { Dictionary(grouping: $0.values, by: \.listener).mapValues(\.count) }
    }

    var totalByListener: [String: Int] { totals.withLockedValue { $0 } }
}
