import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// One `OutlierDetector` per cluster with outlier detection, shared by every event loop: an
/// endpoint ejected on one loop is out for all of them (Envoy's detector is per cluster too).
final class OutlierDetectors: Sendable {
    static let shared = OutlierDetectors()

    private let detectors = NIOLockedValueBox<[String: OutlierDetector]>([:])

    static func host(_ e: Endpoint) -> String { "\(e.address):\(e.port)" }

    /// Runs `body` on the cluster's detector, made or updated from the cluster's config.
    private func withDetector<T>(_ cluster: Cluster, _ body: (inout OutlierDetector) -> T) -> T? {
        guard let config = cluster.outlierDetection else { return nil }
        return detectors.withLockedValue { all in
            var d = all[cluster.name] ?? OutlierDetector(config: config)
            d.config = config
            let result = body(&d)
            all[cluster.name] = d
            return result
        }
    }

    /// The cluster's ejected endpoints ("address:port") now; empty without outlier detection.
    func ejected(in cluster: Cluster, now: NIODeadline = .now()) -> Set<String> {
        withDetector(cluster) { d in
            d.sweepIfDue(now: now)
            return Set(d.hosts.filter { $0.value.ejectedUntil != nil }.keys)
        } ?? []
    }

    func record(_ outcome: OutlierDetector.Outcome, host: String, cluster: Cluster,
                now: NIODeadline = .now()) -> OutlierDetector.Action {
        withDetector(cluster) { d in
            d.record(outcome, host: host, hostCount: cluster.endpoints.count, now: now)
        } ?? .none
    }

    /// Ejected endpoints per cluster, for the admin page and the stats gauge; hosts no longer
    /// in a cluster are forgotten, clusters gone or without outlier detection dropped.
    func ejectedByCluster(_ clusters: [Cluster], now: NIODeadline = .now()) -> [String: Set<String>] {
        let configured = Dictionary(clusters.filter { $0.outlierDetection != nil }.map { ($0.name, $0) },
                                    uniquingKeysWith: { a, _ in a })
        return detectors.withLockedValue { all in
            all = all.filter { configured[$0.key] != nil }
            var out: [String: Set<String>] = [:]
            for (name, var d) in all {
                d.keep(only: Set(configured[name]!.endpoints.map(Self.host)))
                d.sweepIfDue(now: now)
                all[name] = d
                out[name] = Set(d.hosts.filter { $0.value.ejectedUntil != nil }.keys)
            }
            return out
        }
    }
}
