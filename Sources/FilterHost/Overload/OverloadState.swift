/// The overload manager's state: each monitor's last pressure and the actions in force.
/// Pure value type, fed readings; `OverloadManager` does the reading and applies the result.
///
/// Envoy's threshold trigger has no hysteresis: an action is active while some trigger's
/// pressure is at or above its threshold, and inactive from the first reading below all of
/// them. A monitor whose reading failed keeps its last pressure (Envoy counts the failure
/// and leaves the action states as they were); one never read counts as no pressure.
package struct OverloadState: Sendable {
    package enum Reading: Sendable, Equatable {
        /// Used amount; pressure is this over the monitor's maximum.
        case used(Int)
        case failed
    }

    package struct MonitorState: Sendable, Equatable {
        package var used: Int?
        package var pressure: Double?
        package var failedUpdates = 0
    }

    /// What a refresh changed.
    package enum Change: Equatable, Sendable {
        case unchanged
        /// The set of actions in force is now this one.
        case actions(OverloadActions)
    }

    package private(set) var plan: OverloadPlan
    package private(set) var monitors: [String: MonitorState] = [:]
    package private(set) var active: OverloadActions = []

    package init(plan: OverloadPlan = .off) {
        self.plan = plan
    }

    /// A new config: monitors it keeps keep their readings (so a raised limit is judged
    /// against the last reading at once), the actions are evaluated again.
    package mutating func reconfigure(_ next: OverloadPlan) -> Change {
        plan = next
        var kept: [String: MonitorState] = [:]
        for m in next.monitors {
            var s = monitors[m.name] ?? MonitorState()
            s.pressure = s.used.map { Self.pressure($0, of: m.resource) }
            kept[m.name] = s
        }
        monitors = kept
        return evaluate()
    }

    /// One refresh: a reading per monitor (missing ones are left as they were).
    package mutating func update(_ readings: [String: Reading]) -> Change {
        for m in plan.monitors {
            guard let reading = readings[m.name] else { continue }
            var s = monitors[m.name] ?? MonitorState()
            switch reading {
            case .used(let n):
                s.used = n
                s.pressure = Self.pressure(n, of: m.resource)
            case .failed:
                s.failedUpdates += 1
            }
            monitors[m.name] = s
        }
        return evaluate()
    }

    package func isActive(_ action: OverloadAction) -> Bool { active.contains(OverloadActions(action)) }

    private mutating func evaluate() -> Change {
        var next: OverloadActions = []
        for a in plan.actions where a.triggers.contains(where: { t in
            (monitors[t.monitor]?.pressure).map { $0 >= t.threshold } ?? false
        }) {
            next.insert(OverloadActions(a.action))
        }
        guard next != active else { return .unchanged }
        active = next
        return .actions(next)
    }

    private static func pressure(_ used: Int, of resource: OverloadResource) -> Double {
        Double(used) / Double(resource.max)
    }
}
