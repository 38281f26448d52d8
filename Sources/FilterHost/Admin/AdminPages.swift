#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

enum AdminPages {
    static func status(of result: Result<Int, ConfigError>?) -> HTTPResponseStatus {
        switch result {
        case .failure: return .badRequest
        default: return .ok
        }
    }

    static func describe(_ result: Result<Int, ConfigError>?) -> String {
        switch result {
        case .success(let v): return "applied version \(v)\n"
        case .failure(let e): return "refused: \(e.description)\n"
        case nil: return "unchanged\n"
        }
    }

    /// The whole config (`resource` nil), or one of its lists as Envoy's `?resource=` gives it:
    /// `{"configs": [...]}`. Envoy's resource names map onto meshd's lists (a proxy's config is
    /// one snapshot: dynamic and static are the same). Nil for an unknown resource.
    static func configDump(_ runtime: ProxyRuntime, resource: String?) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bootstrap = runtime.snapshot.bootstrap.redactingPrivateKeys
        guard let resource, !resource.isEmpty else {
            struct Dump: Encodable {
                let version: Int
                let acceptedUpdates: Int
                let rejectedUpdates: Int
                let lastRejection: String?
                let config: Bootstrap
            }
            let s = runtime.status
            let dump = Dump(version: s.version, acceptedUpdates: s.accepted, rejectedUpdates: s.rejected,
                            lastRejection: s.lastError, config: bootstrap)
            return (try? String(decoding: encoder.encode(dump), as: UTF8.self)) ?? "{}"
        }
        let items: Data?
        switch resource {
        case "listeners", "dynamic_listeners", "static_listeners": items = try? encoder.encode(bootstrap.listeners)
        case "routeConfigs", "dynamic_route_configs", "static_route_configs": items = try? encoder.encode(bootstrap.routeConfigs)
        case "clusters", "dynamic_active_clusters", "static_clusters": items = try? encoder.encode(bootstrap.clusters)
        case "luaPlugins": items = try? encoder.encode(bootstrap.luaPlugins)
        default: return nil
        }
        return "{\n\"configs\" : " + String(decoding: items ?? Data("[]".utf8), as: UTF8.self) + "\n}\n"
    }

    /// Every series the proxy exports: the loops' stats plus the runtime's own.
    static func metrics(_ stats: LoopStats.Snapshot, runtime: ProxyRuntime) -> MetricSet {
        var counters = stats.counters
        var gauges = stats.gauges
        for (l, n) in runtime.tracker.totalByListener { counters["meshd_downstream_cx_total{listener=\"\(l)\"}"] = n }
        for (l, n) in runtime.tracker.activeByListener { gauges["meshd_downstream_cx_active{listener=\"\(l)\"}"] = n }
        for (l, n) in runtime.tracker.overflowByListener { counters["meshd_downstream_cx_overflow_total{listener=\"\(l)\"}"] = n }
        gauges["meshd_downstream_cx_budget"] = runtime.tracker.processLimit
        let s = runtime.status
        gauges["meshd_config_version"] = s.version
        for e in runtime.registry.extensions { gauges.merge(e.ext.gauges()) { a, _ in a } }
        let overload = runtime.overload.metrics()
        gauges.merge(overload.gauges) { a, _ in a }
        counters.merge(overload.counters) { a, _ in a }
        counters["meshd_config_updates_accepted_total"] = s.accepted
        counters["meshd_config_updates_rejected_total"] = s.rejected
        return MetricSet(counters: counters, gauges: gauges, histograms: stats.histograms)
    }

    static func prometheus(_ stats: LoopStats.Snapshot, runtime: ProxyRuntime) -> String {
        metrics(stats, runtime: runtime).prometheus
    }
}

/// A set of series (Prometheus keys: `name{labels}`), as text or Envoy-style JSON.
struct MetricSet {
    var counters: [String: Int]
    var gauges: [String: Int]
    var histograms: [String: HistogramCounts]

    /// The series whose key (name and labels) the regex finds a match in (Envoy's `filter=`).
    func filtered(by regex: RE2Regex) -> MetricSet {
        MetricSet(counters: counters.filter { regex.partialMatch($0.key) },
                  gauges: gauges.filter { regex.partialMatch($0.key) },
                  histograms: histograms.filter { regex.partialMatch($0.key) })
    }

    var prometheus: String { PrometheusText.render(counters: counters, gauges: gauges, histograms: histograms) }

    /// Envoy's `/stats?format=json` shape: `{"stats": [{"name", "value"}…, {"histograms": […]}]}`;
    /// a histogram is its cumulative buckets, sum and count. Values are as in the text format.
    var json: String {
        var stats: [[String: Any]] = []
        for key in counters.keys.sorted() {
            let units = MetricCatalog.family(PrometheusText.familyName(key))?.unitsPerBaseUnit
            stats.append(["name": key, "value": units.map { Double(counters[key]!) / $0 } ?? counters[key]!])
        }
        for key in gauges.keys.sorted() { stats.append(["name": key, "value": gauges[key]!]) }
        if !histograms.isEmpty {
            let items: [[String: Any]] = histograms.keys.sorted().map { key in
                let h = histograms[key]!
                return ["name": key, "sum": h.sum, "count": h.count,
                        "buckets": h.cumulative.map { ["le": $0.0, "count": $0.1] as [String: Any] }]
            }
            stats.append(["histograms": items])
        }
        return AdminPages.jsonText(["stats": stats])
    }
}
