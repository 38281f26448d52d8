#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The admin server's `GET /overload`: every monitor's reading and pressure, every action's
/// state and triggers, and what the actions refused so far.
enum OverloadPage {
    private struct Page: Encodable {
        var enabled: Bool
        var refreshIntervalMs: Int64
        var resourceMonitors: [Monitor]
        var actions: [Action]
        var requestsShed: Int
        var connectionsRejected: Int
    }

    private struct Monitor: Encodable {
        var name: String
        var max: Int
        var used: Int?
        /// used / max; nil until the first reading.
        var pressure: Double?
        var failedUpdates: Int
    }

    private struct Action: Encodable {
        var name: String
        var active: Bool
        var triggers: [Trigger]
    }

    private struct Trigger: Encodable {
        var name: String
        var threshold: Double
    }

    static func json(_ state: OverloadState, stats: LoopStats.Snapshot) -> String {
        func total(_ prefix: String) -> Int {
            stats.counters.reduce(0) { $0 + ($1.key.hasPrefix(prefix + "{") ? $1.value : 0) }
        }
        let plan = state.plan
        let page = Page(
            enabled: !plan.isOff,
            refreshIntervalMs: plan.refreshInterval.nanoseconds / 1_000_000,
            resourceMonitors: plan.monitors.map { m in
                let s = state.monitors[m.name]
                return Monitor(name: m.name, max: m.resource.max, used: s?.used, pressure: s?.pressure,
                               failedUpdates: s?.failedUpdates ?? 0)
            },
            actions: plan.actions.map { a in
                Action(name: a.action.rawValue, active: state.isActive(a.action),
                       triggers: a.triggers.map { Trigger(name: $0.monitor, threshold: $0.threshold) })
            },
            requestsShed: total("meshd_downstream_rq_overload_close_total"),
            connectionsRejected: total("meshd_downstream_cx_overload_reject_total"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? String(decoding: encoder.encode(page), as: UTF8.self)) ?? "{}"
    }
}
