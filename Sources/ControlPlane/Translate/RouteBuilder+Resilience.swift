#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

extension RetryPolicy {
    /// Istio's default: 2 retries on connect-failure, refused-stream, unavailable, cancelled
    /// and 503, to another host where there is one.
    package static let istioDefault = RetryPolicy(
        retryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        numRetries: 2, retriableStatusCodes: [503], retryOtherHosts: true)
}

/// Istio's `retries` and `mirror` / `mirrors` as route retry and mirror policies, with
/// Istio's values (pilot's route/retry package): a route without `retries` gets Istio's
/// default policy, `attempts: 0` none.
extension RouteBuilder {
    static var defaultRetryPolicy: RetryPolicy { .istioDefault }

    func retryPolicy(_ r: HTTPRetry?, _ id: String, _ path: String) -> RetryPolicy? {
        guard let r else { return Self.defaultRetryPolicy }
        guard let attempts = r.attempts, attempts > 0 else { return nil }
        var out = Self.defaultRetryPolicy
        out.numRetries = attempts
        if let retryOn = r.retryOn, !retryOn.trimmed.isEmpty {
            // Numbers are status codes (retriable-status-codes is implied), the rest conditions.
            var conditions: [String] = []
            var codes: [Int] = []
            for part in retryOn.split(separator: ",").map({ $0.trimmed }) where !part.isEmpty {
                if let code = Int(part) {
                    if (100...599).contains(code) { codes.append(code) } else {
                        ctx.warn(id, path + ".retries.retryOn", "\(code) is not an HTTP status; ignored")
                    }
                } else if part == "http3-post-connect-failure" {
                    ctx.warn(id, path + ".retries.retryOn", "meshd has no HTTP/3 upstreams: \(part) ignored")
                } else {
                    conditions.append(part)
                }
            }
            if !codes.isEmpty, !conditions.contains("retriable-status-codes") { conditions.append("retriable-status-codes") }
            out.retryOn = conditions.joined(separator: ",")
            out.retriableStatusCodes = codes.isEmpty ? nil : codes
        }
        if let ms = r.perTryTimeoutMs { out.perTryTimeoutMs = ms }
        if let ignore = r.retryIgnorePreviousHosts { out.retryOtherHosts = ignore }
        // Istio: Envoy's previous_priorities retry priority, update_frequency 2.
        if r.retryRemoteLocalities == true { out.previousPrioritiesUpdateFrequency = 2 }
        if let ms = r.backoffMs { out.backoffBaseIntervalMs = ms }
        return out
    }

    /// `mirror` (with `mirrorPercentage`, else the deprecated `mirrorPercent`, else 100 %)
    /// and each of `mirrors` (its own `percentage`, else 100 %).
    func mirrorPolicies(_ http: HTTPRoute, _ vs: Config<VirtualService>) -> [MirrorPolicy]? {
        var out: [MirrorPolicy] = []
        if let m = http.mirror, let cluster = mirrorCluster(m, vs) {
            let percent = http.mirrorPercentage?.value ?? http.mirrorPercent.map(Double.init) ?? 100
            out.append(MirrorPolicy(cluster: cluster, percent: percent))
        }
        for m in http.mirrors {
            guard let d = m.destination, let cluster = mirrorCluster(d, vs) else { continue }
            out.append(MirrorPolicy(cluster: cluster, percent: m.percentage?.value ?? 100))
        }
        return out.isEmpty ? nil : out
    }

    private func mirrorCluster(_ d: Destination, _ vs: Config<VirtualService>) -> String? {
        guard let host = d.host else { return nil }
        let fqdn = HostNames.fqdn(host, namespace: vs.namespace)
        return ctx.cluster(host: fqdn, port: d.port?.number ?? defaultPort(for: fqdn), subset: d.subset)
    }
}
