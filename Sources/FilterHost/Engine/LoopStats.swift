import Transport

/// Counters and histograms kept per event loop; the admin server adds the loops' copies
/// together. The hot path bumps fields of small per-listener / per-cluster objects; the
/// Prometheus names are built only when someone scrapes. Free-form series (filters' keys,
/// whose label values may come from requests) are capped per loop so a flood of distinct
/// label values cannot grow memory without bound.
final class LoopStats: StatsScope {
    struct Snapshot: Sendable {
        var counters: [String: Int] = [:]
        var gauges: [String: Int] = [:]
        var histograms: [String: HistogramCounts] = [:]
        /// Per upstream host (`HostKey`): Envoy's /clusters host counters; not exported to
        /// Prometheus (a series per endpoint is what Envoy keeps out of its stats too).
        var hosts: [HostKey: HostCounts] = [:]

        mutating func merge(_ other: Snapshot) {
            counters.merge(other.counters, uniquingKeysWith: +)
            hosts.merge(other.hosts) { a, b in
                HostCounts(requests: a.requests + b.requests, errors: a.errors + b.errors,
                           connections: a.connections + b.connections)
            }
            gauges.merge(other.gauges, uniquingKeysWith: +)
            histograms.merge(other.histograms) { a, b in
                var a = a
                a.merge(b)
                return a
            }
        }
    }

    final class Listener {
        var requests = 0
        var active = 0
        var byClass = [Int](repeating: 0, count: 6)
        /// Downstream request time, first request byte to last response byte.
        var requestTime = HistogramCounts(bounds: .envoyDefaultSeconds)
    }

    final class Cluster {
        var requests = 0
        var byCode: [Int: Int] = [:]
    }

    struct HostKey: Hashable, Sendable {
        var cluster: String
        var host: String
    }

    /// Answers an upstream host gave (or that stood for it: a connect failure is a 503).
    struct HostCounts: Sendable {
        var requests = 0
        /// 5xx answers (Envoy's rq_error); the rest are rq_success.
        var errors = 0
        /// Connections open now (filled in when the loops' copies are collected).
        var connections = 0
    }

    /// Free-form series (counters plus histograms) one loop keeps; past it new series are
    /// dropped and counted in `meshd_stats_series_overflow_total`.
    static let maxFreeFormSeries = 20_000

    private var listeners: [String: Listener] = [:]
    private var clusters: [String: Cluster] = [:]
    private var hosts: [HostKey: HostCounts] = [:]
    private var counters: [String: Int] = [:]
    private var histograms: [String: HistogramCounts] = [:]
    private var overflowedSeries = 0

    private var hasRoomForNewSeries: Bool {
        guard counters.count + histograms.count < Self.maxFreeFormSeries else {
            overflowedSeries += 1
            return false
        }
        return true
    }

    /// A free-form counter (a full Prometheus series name as the key).
    /// One hash of the key for a series that exists (the common case on the request path).
    func count(_ key: String, _ n: Int = 1) {
        if let i = counters.index(forKey: key) {
            counters.values[i] += n
        } else if hasRoomForNewSeries {
            counters[key] = n
        }
    }

    func observe(_ key: String, _ value: Double, bounds: HistogramBounds) {
        if let i = histograms.index(forKey: key) {
            histograms.values[i].observe(value)
        } else if hasRoomForNewSeries {
            var h = HistogramCounts(bounds: bounds)
            h.observe(value)
            histograms[key] = h
        }
    }

    /// The series objects used last: a loop mostly serves one listener and cluster, and
    /// names from one snapshot compare by identity, so the hash per request is skipped.
    private var lastListener: (name: String, series: Listener)?
    private var lastCluster: (name: String, series: Cluster)?

    func listener(_ name: String) -> Listener {
        if let last = lastListener, last.name == name { return last.series }
        let l: Listener
        if let existing = listeners[name] { l = existing } else {
            l = Listener()
            listeners[name] = l
        }
        lastListener = (name, l)
        return l
    }

    /// An answer from `host` of `cluster` (nil when no endpoint was picked).
    func upstreamResponse(cluster: String, code: Int, host: String? = nil) {
        if let host {
            // Endpoints come from config (bounded), never from requests.
            let key = HostKey(cluster: cluster, host: host)
            if let i = hosts.index(forKey: key) {
                hosts.values[i].requests += 1
                if code >= 500 { hosts.values[i].errors += 1 }
            } else {
                hosts[key] = HostCounts(requests: 1, errors: code >= 500 ? 1 : 0)
            }
        }
        let c: Cluster
        if let last = lastCluster, last.name == cluster { c = last.series } else {
            if let existing = clusters[cluster] { c = existing } else {
                c = Cluster()
                clusters[cluster] = c
            }
            lastCluster = (cluster, c)
        }
        c.requests += 1
        c.byCode[code, default: 0] += 1
    }

    /// Admin /reset_counters: every counter back to zero (series stay, at 0); gauges and
    /// histograms are left alone, as Envoy does.
    func resetCounters() {
        for key in counters.keys { counters[key] = 0 }
        overflowedSeries = 0
        for l in listeners.values {
            l.requests = 0
            l.byClass = [Int](repeating: 0, count: l.byClass.count)
        }
        for c in clusters.values {
            c.requests = 0
            for code in c.byCode.keys { c.byCode[code] = 0 }
        }
        for key in hosts.keys { hosts[key] = HostCounts() }
    }

    var snapshot: Snapshot {
        var s = Snapshot(counters: counters, histograms: histograms, hosts: hosts)
        if overflowedSeries > 0 { s.counters["meshd_stats_series_overflow_total"] = overflowedSeries }
        for (name, l) in listeners {
            let label = "listener=\"\(PrometheusText.escape(name))\""
            s.counters["meshd_downstream_rq_total{\(label)}"] = l.requests
            s.gauges["meshd_downstream_rq_active{\(label)}"] = l.active
            for (cls, n) in l.byClass.enumerated() where n > 0 {
                s.counters["meshd_downstream_rq_xx_total{\(label),response_code_class=\"\(cls)xx\"}"] = n
            }
            if l.requestTime.count > 0 { s.histograms["meshd_downstream_rq_time_seconds{\(label)}"] = l.requestTime }
        }
        for (name, c) in clusters {
            let label = "cluster=\"\(PrometheusText.escape(name))\""
            s.counters["meshd_upstream_rq_total{\(label)}"] = c.requests
            for (code, n) in c.byCode {
                s.counters["meshd_upstream_rq_completed_total{\(label),response_code=\"\(code)\"}"] = n
            }
        }
        return s
    }
}
