import NIOConcurrencyHelpers
import NIOCore

/// Envoy's overload manager: reads every resource monitor each refresh interval, feeds the
/// readings to `OverloadState`, and enforces the actions in force — each event loop gets the
/// set (read per request and per accept, no lock), and the data listeners stop or resume
/// accepting. The admin listener is not one of them, so it stays reachable.
///
/// Refreshes and reconfigurations run on one event loop, one at a time, so actions are
/// enforced in the order they were decided.
final class OverloadManager: Sendable {
    private struct State {
        var overload = OverloadState()
        var task: RepeatedTask?
        var interval: TimeAmount?
    }

    private let state = NIOLockedValueBox(State())
    private let loop: EventLoop
    private let contexts: LoopContexts
    private let connections: @Sendable () -> Int
    private let listeners: @Sendable () -> [Channel]

    /// - Parameters:
    ///   - connections: open downstream connections on the data listeners.
    ///   - listeners: the data listeners' server channels (never the admin's).
    init(loop: EventLoop, contexts: LoopContexts, connections: @escaping @Sendable () -> Int,
         listeners: @escaping @Sendable () -> [Channel]) {
        self.loop = loop
        self.contexts = contexts
        self.connections = connections
        self.listeners = listeners
    }

    /// Takes a new plan (at start and after every applied config): monitors are read at
    /// once, and the actions, and the listeners' accepting, are enforced before this returns.
    /// Must not be called on an event loop.
    func configure(_ plan: OverloadPlan) {
        _ = try? loop.flatSubmit { () -> EventLoopFuture<Void> in
            let readings = self.read(plan)
            let actions = self.state.withLockedValue { s -> OverloadActions in
                _ = s.overload.reconfigure(plan)
                _ = s.overload.update(readings)
                if s.interval != plan.refreshInterval || plan.isOff {
                    s.task?.cancel()
                    s.task = nil
                    s.interval = nil
                }
                if !plan.isOff, s.task == nil {
                    s.interval = plan.refreshInterval
                    s.task = self.loop.scheduleRepeatedTask(initialDelay: plan.refreshInterval,
                                                            delay: plan.refreshInterval) { _ in self.refresh() }
                }
                return s.overload.active
            }
            // Listeners may have been bound or replaced with the config: enforce on all of them.
            return self.enforce(actions)
        }.wait()
    }

    func stop() {
        state.withLockedValue {
            $0.task?.cancel()
            $0.task = nil
        }
    }

    private func refresh() {
        let plan = state.withLockedValue { $0.overload.plan }
        let readings = read(plan)
        let change = state.withLockedValue { $0.overload.update(readings) }
        if case .actions(let actions) = change { _ = enforce(actions) }
    }

    private func read(_ plan: OverloadPlan) -> [String: OverloadState.Reading] {
        var readings: [String: OverloadState.Reading] = [:]
        for m in plan.monitors {
            switch m.resource {
            case .processMemory:
                readings[m.name] = ResourceReaders.residentBytes().map { .used($0) } ?? .failed
            case .downstreamConnections:
                readings[m.name] = .used(connections())
            }
        }
        return readings
    }

    private func enforce(_ actions: OverloadActions) -> EventLoopFuture<Void> {
        let accepting = !actions.contains(.stopAcceptingConnections)
        for channel in listeners() {
            channel.setOption(ChannelOptions.autoRead, value: accepting).whenFailure { _ in }
        }
        return contexts.forEach { $0.overload = actions }.map { _ in }
    }

    var current: OverloadState { state.withLockedValue { $0.overload } }

    /// Gauges for `/stats/prometheus`: Envoy's `overload.<action>.active` (0/1) and
    /// `overload.<monitor>.pressure` (percent), plus failed reads as a counter.
    func metrics() -> (gauges: [String: Int], counters: [String: Int]) {
        let s = current
        var gauges: [String: Int] = [:]
        var counters: [String: Int] = [:]
        for a in s.plan.actions {
            gauges["meshd_overload_action_active{action=\"\(a.action.rawValue)\"}"] = s.isActive(a.action) ? 1 : 0
        }
        for m in s.plan.monitors {
            let ms = s.monitors[m.name]
            gauges["meshd_overload_resource_pressure{resource=\"\(m.name)\"}"] = Int(((ms?.pressure ?? 0) * 100).rounded())
            counters["meshd_overload_failed_updates_total{resource=\"\(m.name)\"}"] = ms?.failedUpdates ?? 0
        }
        return (gauges, counters)
    }
}
