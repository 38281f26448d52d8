import MeshAPI
import NIOConcurrencyHelpers

/// Envoy's circuit breakers: connections, pending requests and active requests per cluster,
/// counted across every event loop (as `RetryBudget` counts retries), so a cluster's limits
/// hold for the whole process whatever the number of loops.
final class CircuitBreakers: Sendable {
    static let shared = CircuitBreakers()

    enum Resource: Sendable, CaseIterable {
        /// Connections open or being opened (Envoy's `max_connections`).
        case connections
        /// Requests waiting for a connection (`max_pending_requests`).
        case pendingRequests
        /// Requests on a connection (`max_requests`).
        case requests

        /// Envoy's default threshold, 1024 for each.
        func limit(of cluster: Cluster) -> Int {
            switch self {
            case .connections: cluster.maxConnections ?? 1024
            case .pendingRequests: cluster.maxPendingRequests ?? 1024
            case .requests: cluster.maxRequests ?? 1024
            }
        }
    }

    private struct Key: Hashable {
        let cluster: String
        let resource: Resource
    }

    private let counts = NIOLockedValueBox<[Key: Int]>([:])

    /// Takes one of `cluster`'s `resource`; false when its limit is reached.
    func tryAcquire(_ resource: Resource, of cluster: Cluster) -> Bool {
        tryAcquire(resource, of: cluster.name, limit: resource.limit(of: cluster))
    }

    /// The same with the limit read beforehand, for a caller that keeps the name and limit
    /// rather than a copy of the whole cluster.
    func tryAcquire(_ resource: Resource, of cluster: String, limit max: Int) -> Bool {
        let key = Key(cluster: cluster, resource: resource)
        return counts.withLockedValue { counts in
            // One hash of the key while the cluster has requests out (the common case).
            guard let i = counts.index(forKey: key) else {
                guard max > 0 else { return false }
                counts[key] = 1
                return true
            }
            guard counts.values[i] < max else { return false }
            counts.values[i] += 1
            return true
        }
    }

    /// Takes one whatever the limit (a pool's only connection, see `EndpointPool.connect`).
    func forceAcquire(_ resource: Resource, of cluster: String) {
        counts.withLockedValue { $0[Key(cluster: cluster, resource: resource), default: 0] += 1 }
    }

    func release(_ resource: Resource, of cluster: String, _ n: Int = 1) {
        guard n > 0 else { return }
        let key = Key(cluster: cluster, resource: resource)
        counts.withLockedValue { counts in
            guard let i = counts.index(forKey: key) else { return }
            let left = counts.values[i] - n
            if left > 0 { counts.values[i] = left } else { counts.remove(at: i) }
        }
    }

    func count(_ resource: Resource, of cluster: String) -> Int {
        counts.withLockedValue { $0[Key(cluster: cluster, resource: resource), default: 0] }
    }
}
