/// Route features for failing upstreams: Envoy's route `retry_policy` and
/// `request_mirror_policies`, as the control plane translates Istio's `retries` and `mirror`.

/// When and how often the router tries a request again (Envoy's `RetryPolicy`).
public struct RetryPolicy: Codable, Sendable, Equatable {
    /// Envoy's `retry_on` conditions, comma separated: 5xx, gateway-error, reset,
    /// connect-failure, envoy-ratelimited, retriable-4xx, refused-stream,
    /// retriable-status-codes, retriable-headers, and the gRPC ones cancelled,
    /// deadline-exceeded, internal, resource-exhausted, unavailable.
    public var retryOn: String
    /// Retries after the first attempt (default 1, as Envoy).
    public var numRetries: Int?
    /// Each attempt's own timeout, from the whole request being sent upstream (0 or unset: none).
    public var perTryTimeoutMs: Int?
    /// Statuses retried under `retriable-status-codes`.
    public var retriableStatusCodes: [Int]?
    /// Response headers retried under `retriable-headers` (any one matching; no regex).
    public var retriableHeaders: [HeaderMatcher]?
    /// Jittered exponential backoff: base (default 25 ms) and cap (default 10 × base).
    public var backoffBaseIntervalMs: Int?
    public var backoffMaxIntervalMs: Int?
    /// Envoy's `previous_hosts` retry host predicate: a retry goes to an endpoint not tried
    /// yet for this request while one exists (default false).
    public var retryOtherHosts: Bool?
    /// Envoy's `previous_priorities` retry priority with this `update_frequency`: once that
    /// many attempts were made (and at each multiple), a retry leaves out the priorities
    /// (localities) already tried. Istio sets 2 for `retryRemoteLocalities`. Unset: none.
    public var previousPrioritiesUpdateFrequency: Int?

    public init(retryOn: String, numRetries: Int? = nil, perTryTimeoutMs: Int? = nil, retriableStatusCodes: [Int]? = nil,
                retriableHeaders: [HeaderMatcher]? = nil, backoffBaseIntervalMs: Int? = nil,
                backoffMaxIntervalMs: Int? = nil, retryOtherHosts: Bool? = nil,
                previousPrioritiesUpdateFrequency: Int? = nil) {
        self.retryOn = retryOn
        self.numRetries = numRetries
        self.perTryTimeoutMs = perTryTimeoutMs
        self.retriableStatusCodes = retriableStatusCodes
        self.retriableHeaders = retriableHeaders
        self.backoffBaseIntervalMs = backoffBaseIntervalMs
        self.backoffMaxIntervalMs = backoffMaxIntervalMs
        self.retryOtherHosts = retryOtherHosts
        self.previousPrioritiesUpdateFrequency = previousPrioritiesUpdateFrequency
    }
}

/// A copy of each matching request sent to another cluster, answer ignored (Envoy's
/// `RequestMirrorPolicy`). The copy's Host / :authority gets `-shadow` after its host part.
public struct MirrorPolicy: Codable, Sendable, Equatable {
    public var cluster: String
    /// Share of requests copied, 0–100 (default 100).
    public var percent: Double?

    public init(cluster: String, percent: Double? = nil) {
        self.cluster = cluster
        self.percent = percent
    }
}
