import Dispatch
import Transport

/// The discovery server's own metrics, with Istio's names so its dashboards work:
/// `pilot_xds_pushes{type}` (resources of one kind sent to one proxy) and
/// `pilot_proxy_convergence_time` (seconds from a change the control plane took up to the
/// proxy acknowledging the config made from it).
public struct PushMetrics: Sendable {
    /// Istio's buckets for `pilot_proxy_convergence_time` (pilot/pkg/xds/monitoring.go).
    public static let convergenceBounds = HistogramBounds([0.1, 0.5, 1, 3, 5, 10, 20, 30])

    public private(set) var pushesByType: [String: Int] = [:]
    public private(set) var convergence = HistogramCounts(bounds: convergenceBounds)

    public init() {}

    /// Istio's `type` label for a resource name: "listener/…" is `lds`, and so on; Lua
    /// plugins travel the way Istio's WasmPlugins do, as extension configs (`ecds`).
    public static func type(ofResource name: String) -> String {
        switch name.prefix(while: { $0 != "/" }) {
        case "listener": "lds"
        case "route": "rds"
        case "cluster": "cds"
        case "plugin": "ecds"
        default: "unknown"
        }
    }

    /// One response to one proxy carrying (or removing) resources of these types.
    mutating func recordPush(types: Set<String>) {
        for t in types { pushesByType[t, default: 0] += 1 }
    }

    mutating func recordConvergence(since start: DispatchTime, now: DispatchTime = .now()) {
        convergence.observe(Double(now.uptimeNanoseconds &- start.uptimeNanoseconds) / 1e9)
    }

    /// Both families in the text format. `pilot_xds_pushes` keeps Istio's name, without
    /// `_total` (Istio exports its counters without the suffix), so promtool notes that once.
    public var prometheusText: String {
        var out = "# HELP pilot_xds_pushes Pushes of one resource type (lds, rds, cds, ecds) to one proxy.\n"
        out += "# TYPE pilot_xds_pushes counter\n"
        for type in pushesByType.keys.sorted() { out += "pilot_xds_pushes{type=\"\(type)\"} \(pushesByType[type]!)\n" }
        out += "# HELP pilot_proxy_convergence_time Delay in seconds between a config change and a proxy acknowledging the config made from it.\n"
        out += "# TYPE pilot_proxy_convergence_time histogram\n"
        for (le, n) in convergence.cumulative { out += "pilot_proxy_convergence_time_bucket{le=\"\(le)\"} \(n)\n" }
        out += "pilot_proxy_convergence_time_sum \(PrometheusText.number(convergence.sum))\n"
        out += "pilot_proxy_convergence_time_count \(convergence.count)\n"
        return out
    }
}
