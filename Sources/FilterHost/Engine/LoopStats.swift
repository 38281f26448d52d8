import Transport

/// Counters kept per event loop; the admin server adds the loops' copies together.
/// The hot path bumps integer fields of small per-listener / per-cluster objects; the
/// Prometheus names are built only when someone scrapes.
final class LoopStats: StatsScope {
    struct Snapshot: Sendable {
        var counters: [String: Int] = [:]
        var gauges: [String: Int] = [:]

        mutating func merge(_ other: Snapshot) {
            counters.merge(other.counters, uniquingKeysWith: +)
            gauges.merge(other.gauges, uniquingKeysWith: +)
        }
    }

    final class Listener {
        var requests = 0
        var active = 0
        var byClass = [Int](repeating: 0, count: 6)
    }

    final class Cluster {
        var requests = 0
        var byCode: [Int: Int] = [:]
    }

    private var listeners: [String: Listener] = [:]
    private var clusters: [String: Cluster] = [:]
    private var counters: [String: Int] = [:]

    /// A free-form counter, for rare events (a full Prometheus series name as the key).
    func count(_ key: String, _ n: Int = 1) { counters[key, default: 0] += n }

    func listener(_ name: String) -> Listener {
        if let l = listeners[name] { return l }
        let l = Listener()
        listeners[name] = l
        return l
    }

    func upstreamResponse(cluster: String, code: Int) {
        let c: Cluster
        if let existing = clusters[cluster] { c = existing } else {
            c = Cluster()
            clusters[cluster] = c
        }
        c.requests += 1
        c.byCode[code, default: 0] += 1
    }

    var snapshot: Snapshot {
        var s = Snapshot(counters: counters)
        for (name, l) in listeners {
            s.counters["meshd_downstream_rq_total{listener=\"\(name)\"}"] = l.requests
            s.gauges["meshd_downstream_rq_active{listener=\"\(name)\"}"] = l.active
            for (cls, n) in l.byClass.enumerated() where n > 0 {
                s.counters["meshd_downstream_rq_xx{listener=\"\(name)\",response_code_class=\"\(cls)xx\"}"] = n
            }
        }
        for (name, c) in clusters {
            s.counters["meshd_upstream_rq_total{cluster=\"\(name)\"}"] = c.requests
            for (code, n) in c.byCode {
                s.counters["meshd_upstream_rq{cluster=\"\(name)\",response_code=\"\(code)\"}"] = n
            }
        }
        return s
    }
}
