/// Counters kept per event loop; the admin server adds the loops' copies together.
final class LoopStats {
    struct Snapshot: Sendable {
        var counters: [String: Int] = [:]
        var gauges: [String: Int] = [:]

        mutating func merge(_ other: Snapshot) {
            counters.merge(other.counters, uniquingKeysWith: +)
            gauges.merge(other.gauges, uniquingKeysWith: +)
        }
    }

    private var counters: [String: Int] = [:]
    private var gauges: [String: Int] = [:]

    func count(_ key: String, _ n: Int = 1) { counters[key, default: 0] += n }
    func gauge(_ key: String, _ delta: Int) { gauges[key, default: 0] += delta }

    func downstreamRequest(listener: String) {
        count("meshd_downstream_rq_total{listener=\"\(listener)\"}")
        gauge("meshd_downstream_rq_active{listener=\"\(listener)\"}", 1)
    }

    func downstreamResponse(listener: String, code: Int) {
        gauge("meshd_downstream_rq_active{listener=\"\(listener)\"}", -1)
        count("meshd_downstream_rq_xx{listener=\"\(listener)\",response_code_class=\"\(code / 100)xx\"}")
    }

    func upstreamResponse(cluster: String, code: Int) {
        count("meshd_upstream_rq_total{cluster=\"\(cluster)\"}")
        count("meshd_upstream_rq{cluster=\"\(cluster)\",response_code=\"\(code)\"}")
    }

    var snapshot: Snapshot { Snapshot(counters: counters, gauges: gauges) }
}
