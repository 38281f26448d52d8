import NIOConcurrencyHelpers

/// Retries outstanding per cluster, across every event loop (Envoy's `max_retries` circuit
/// breaker): a retry holds one from the decision to make it until its outcome is known.
final class RetryBudget: Sendable {
    static let shared = RetryBudget()

    private let outstanding = NIOLockedValueBox<[String: Int]>([:])

    /// Takes one of `cluster`'s retries; false when `max` are already outstanding.
    func acquire(cluster: String, max: Int) -> Bool {
        outstanding.withLockedValue { counts in
            let n = counts[cluster, default: 0]
            guard n < max else { return false }
            counts[cluster] = n + 1
            return true
        }
    }

    func release(cluster: String) {
        outstanding.withLockedValue { counts in
            let n = counts[cluster, default: 0] - 1
            counts[cluster] = n > 0 ? n : nil
        }
    }

    func outstanding(cluster: String) -> Int { outstanding.withLockedValue { $0[cluster, default: 0] } }
}
