/// What one proxy's `istio_requests_total` / `istio_request_duration_milliseconds` said at
/// one scrape, summed per hop (client workload → service → server workload, and how the
/// connection was secured). Two tallies of the same proxy give the traffic in between.
struct TrafficTally: Sendable, Equatable {
    /// One hop as the istio.stats filter labels it.
    struct Hop: Hashable, Sendable {
        var sourceWorkload: String
        var sourceNamespace: String
        var service: String
        var serviceName: String
        var destinationWorkload: String
        var destinationNamespace: String
        /// `connection_security_policy`: `mutual_tls`, `none` or `unknown` (the client's view).
        var security: String
    }

    struct Counts: Sendable, Equatable {
        var requests: Double = 0
        /// 5xx answers, and streams that ended without an answer (response_code 0).
        var errors: Double = 0
        /// Cumulative request-duration counts by bucket upper bound (ms; +Inf included).
        var durationBuckets: [Double: Double] = [:]
    }

    var hops: [Hop: Counts] = [:]

    static let sampleNames: Set<String> = ["istio_requests_total", "istio_request_duration_milliseconds_bucket"]

    /// From a proxy's Prometheus page. The server's sidecar reports each hop into the mesh
    /// (reporter `destination`, which knows whether the client used mTLS); the client's
    /// report is used only for hops no sidecar answered (`destination_workload` unknown).
    init(exposition: String) {
        for sample in ExpositionReader.samples(exposition, names: Self.sampleNames) {
            let l = sample.labels
            let reporter = l["reporter"] ?? ""
            guard reporter == "destination" || (reporter == "source" && (l["destination_workload"] ?? "unknown") == "unknown")
            else { continue }
            let hop = Hop(sourceWorkload: l["source_workload"] ?? "unknown",
                          sourceNamespace: l["source_workload_namespace"] ?? "unknown",
                          service: l["destination_service"] ?? "unknown",
                          serviceName: l["destination_service_name"] ?? "unknown",
                          destinationWorkload: l["destination_workload"] ?? "unknown",
                          destinationNamespace: l["destination_workload_namespace"] ?? "unknown",
                          security: l["connection_security_policy"] ?? "unknown")
            if sample.name == "istio_requests_total" {
                hops[hop, default: Counts()].requests += sample.value
                let code = l["response_code"] ?? ""
                if code.hasPrefix("5") || code == "0" { hops[hop, default: Counts()].errors += sample.value }
            } else if let le = l["le"].flatMap({ $0 == "+Inf" ? Optional(Double.infinity) : Double($0) }) {
                hops[hop, default: Counts()].durationBuckets[le, default: 0] += sample.value
            }
        }
    }

    init(hops: [Hop: Counts] = [:]) { self.hops = hops }

    /// The traffic from `earlier` to this tally. A count that went down was reset (the proxy
    /// restarted): all of it is new, as Prometheus' `rate` takes it.
    func since(_ earlier: TrafficTally) -> TrafficTally {
        func delta(_ now: Double, _ then: Double?) -> Double { now >= (then ?? 0) ? now - (then ?? 0) : now }
        var out = TrafficTally()
        for (hop, now) in hops {
            let then = earlier.hops[hop]
            var d = Counts(requests: delta(now.requests, then?.requests), errors: delta(now.errors, then?.errors))
            for (le, n) in now.durationBuckets { d.durationBuckets[le] = delta(n, then?.durationBuckets[le]) }
            out.hops[hop] = d
        }
        return out
    }
}

extension TrafficTally.Counts {
    mutating func add(_ other: Self) {
        requests += other.requests
        errors += other.errors
        for (le, n) in other.durationBuckets { durationBuckets[le, default: 0] += n }
    }

    /// Prometheus' `histogram_quantile` over cumulative buckets: linear within the bucket the
    /// rank falls in; in the +Inf bucket, the highest finite bound. Nil without observations.
    func quantile(_ q: Double) -> Double? {
        let bounds = durationBuckets.keys.sorted()
        guard let total = bounds.last.flatMap({ durationBuckets[$0] }), total > 0, bounds.last == .infinity else { return nil }
        let rank = q * total
        var lower = 0.0, below = 0.0
        for bound in bounds {
            let count = durationBuckets[bound]!
            if count >= rank {
                if bound == .infinity { return lower }
                return count == below ? bound : lower + (bound - lower) * (rank - below) / (count - below)
            }
            lower = bound
            below = count
        }
        return lower
    }
}
