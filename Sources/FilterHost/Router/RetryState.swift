#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOHTTP1
import Transport

/// Envoy's `retry_on` conditions, parsed once per route.
struct RetryConditions: OptionSet, Sendable {
    let rawValue: UInt32

    static let fiveXX = RetryConditions(rawValue: 1 << 0)
    static let gatewayError = RetryConditions(rawValue: 1 << 1)
    static let reset = RetryConditions(rawValue: 1 << 2)
    static let resetBeforeRequest = RetryConditions(rawValue: 1 << 3)
    static let connectFailure = RetryConditions(rawValue: 1 << 4)
    static let envoyRateLimited = RetryConditions(rawValue: 1 << 5)
    static let retriable4xx = RetryConditions(rawValue: 1 << 6)
    static let refusedStream = RetryConditions(rawValue: 1 << 7)
    static let retriableStatusCodes = RetryConditions(rawValue: 1 << 8)
    static let retriableHeaders = RetryConditions(rawValue: 1 << 9)
    static let grpcCancelled = RetryConditions(rawValue: 1 << 10)
    static let grpcDeadlineExceeded = RetryConditions(rawValue: 1 << 11)
    static let grpcInternal = RetryConditions(rawValue: 1 << 12)
    static let grpcResourceExhausted = RetryConditions(rawValue: 1 << 13)
    static let grpcUnavailable = RetryConditions(rawValue: 1 << 14)

    static let byName: [String: RetryConditions] = [
        "5xx": .fiveXX, "gateway-error": .gatewayError, "reset": .reset, "reset-before-request": .resetBeforeRequest,
        "connect-failure": .connectFailure, "envoy-ratelimited": .envoyRateLimited, "retriable-4xx": .retriable4xx,
        "refused-stream": .refusedStream, "retriable-status-codes": .retriableStatusCodes,
        "retriable-headers": .retriableHeaders, "cancelled": .grpcCancelled, "deadline-exceeded": .grpcDeadlineExceeded,
        "internal": .grpcInternal, "resource-exhausted": .grpcResourceExhausted, "unavailable": .grpcUnavailable,
    ]

    /// The gRPC status (grpc-status) each gRPC condition retries.
    static let grpcStatuses: [(RetryConditions, Int)] = [
        (.grpcCancelled, 1), (.grpcDeadlineExceeded, 4), (.grpcResourceExhausted, 8), (.grpcInternal, 13),
        (.grpcUnavailable, 14),
    ]

    /// Parses a comma-separated list; unknown names are returned, not kept.
    static func parse(_ list: String) -> (RetryConditions, unknown: [String]) {
        var out = RetryConditions()
        var unknown: [String] = []
        for part in list.split(separator: ",") {
            let name = part.trimmed
            guard !name.isEmpty else { continue }
            if let c = byName[name] { out.insert(c) } else { unknown.append(name) }
        }
        return (out, unknown)
    }
}

/// How one attempt ended, as far as retrying goes: before anything of it went downstream.
enum AttemptOutcome {
    /// Response headers came back (not yet forwarded).
    case response(ResponseHead)
    case connectFailure
    /// The stream was reset or the connection closed before the response; `refused` is an
    /// HTTP/2 REFUSED_STREAM (the upstream did not process it).
    case reset(refused: Bool)
    case perTryTimeout
}

/// A route's retry policy, compiled for the router.
struct CompiledRetryPolicy: Sendable {
    let conditions: RetryConditions
    let numRetries: Int
    let perTryTimeoutMs: Int
    let statusCodes: Set<Int>
    let headers: [HeaderMatcher]
    let backoffBaseMs: Int
    let backoffMaxMs: Int
    let retryOtherHosts: Bool
    /// Envoy's previous_priorities `update_frequency` (nil: retries keep the cluster's priority load).
    let previousPrioritiesUpdateFrequency: Int?

    init(_ p: RetryPolicy) {
        conditions = RetryConditions.parse(p.retryOn).0
        numRetries = max(0, p.numRetries ?? 1)
        perTryTimeoutMs = max(0, p.perTryTimeoutMs ?? 0)
        statusCodes = Set(p.retriableStatusCodes ?? [])
        headers = p.retriableHeaders ?? []
        backoffBaseMs = max(1, p.backoffBaseIntervalMs ?? 25)
        backoffMaxMs = max(backoffBaseMs, p.backoffMaxIntervalMs ?? backoffBaseMs * 10)
        retryOtherHosts = p.retryOtherHosts ?? false
        previousPrioritiesUpdateFrequency = p.previousPrioritiesUpdateFrequency.map { max(1, $0) }
    }

    /// Whether `outcome` is one the policy retries (Envoy's `wouldRetryFromHeaders` /
    /// `wouldRetryFromReset`).
    func isRetriable(_ outcome: AttemptOutcome) -> Bool {
        switch outcome {
        case .connectFailure:
            return !conditions.isDisjoint(with: [.connectFailure, .fiveXX, .gatewayError, .reset, .resetBeforeRequest])
        case .reset(let refused):
            if refused && conditions.contains(.refusedStream) { return true }
            return !conditions.isDisjoint(with: [.fiveXX, .gatewayError, .reset])
        case .perTryTimeout:
            return !conditions.isDisjoint(with: [.fiveXX, .gatewayError, .reset])
        case .response(let head):
            return isRetriable(head)
        }
    }

    private func isRetriable(_ head: ResponseHead) -> Bool {
        // An upstream that says it is overloaded is not asked again (as Envoy).
        if head.headers.contains(name: "x-envoy-overloaded") { return false }
        let status = head.status
        if conditions.contains(.fiveXX), status >= 500 { return true }
        if conditions.contains(.gatewayError), (502...504).contains(status) { return true }
        if conditions.contains(.retriable4xx), status == 409 { return true }
        if conditions.contains(.envoyRateLimited), head.headers.contains(name: "x-envoy-ratelimited") { return true }
        if conditions.contains(.retriableStatusCodes), statusCodes.contains(status) { return true }
        if conditions.contains(.retriableHeaders), headers.contains(where: { Self.matches($0, head.headers) }) { return true }
        if let grpc = head.headers.first(name: "grpc-status").flatMap({ Int($0) }) {
            for (c, code) in RetryConditions.grpcStatuses where conditions.contains(c) && grpc == code { return true }
        }
        return false
    }

    /// A retriable-headers matcher: exact, prefix, or presence (regexes are refused at load).
    static func matches(_ m: HeaderMatcher, _ headers: HTTPHeaders) -> Bool {
        let value = headers[canonicalForm: m.name].first.map(String.init)
        let hit: Bool
        if let present = m.present {
            hit = (value != nil) == present
        } else if let exact = m.exact {
            hit = value == exact
        } else if let prefix = m.prefix {
            hit = value?.hasPrefix(prefix) ?? false
        } else {
            hit = value != nil
        }
        return hit != (m.invert ?? false)
    }

    /// The jittered exponential backoff before retry number `n` (1-based), as Envoy: a
    /// random delay below (2^n − 1) × base, never above the cap.
    func backoffMs(retry n: Int, random: (Int) -> Int = { Int.random(in: 0..<$0) }) -> Int {
        let multiplier = n >= 30 ? Int(Int32.max) : (1 << n) - 1
        let (product, overflow) = multiplier.multipliedReportingOverflow(by: backoffBaseMs)
        let ceiling = overflow ? backoffMaxMs : min(product, backoffMaxMs)
        return min(random(max(1, ceiling)), backoffMaxMs)
    }
}

/// Where a request stands against its retry policy (Envoy's RetryState): the router asks
/// it after each failed or retriable attempt whether another one is made.
struct RetryState {
    enum Decision: Equatable {
        /// Try again after this many milliseconds.
        case retry(backoffMs: Int)
        /// The outcome is final (not retriable, or the body can no longer be replayed).
        case no
        /// Retriable, but the policy's retries are spent (flag URX).
        case limitExceeded
        /// Retriable, but the cluster's retry budget is full (flag UO).
        case overflow
    }

    let policy: CompiledRetryPolicy
    private(set) var retriesMade = 0

    init(policy: CompiledRetryPolicy) { self.policy = policy }

    /// `canReplay`: the request can still be sent again whole. `acquireBudget` takes one of
    /// the cluster's outstanding retries, answering false when none is left.
    mutating func decide(_ outcome: AttemptOutcome, canReplay: Bool, acquireBudget: () -> Bool,
                         random: (Int) -> Int = { Int.random(in: 0..<$0) }) -> Decision {
        guard canReplay, policy.isRetriable(outcome) else { return .no }
        guard retriesMade < policy.numRetries else { return .limitExceeded }
        guard acquireBudget() else { return .overflow }
        retriesMade += 1
        return .retry(backoffMs: policy.backoffMs(retry: retriesMade, random: random))
    }
}

/// Envoy's previous_priorities retry priority (Istio's `retryRemoteLocalities`): the
/// priorities (locality failover levels) of the endpoints attempted, and those a retry leaves
/// out. The excluded set is recomputed once `updateFrequency` attempts were made and at each
/// multiple; in between the last one holds, as Envoy keeps its last adjusted load.
struct PreviousPriorities {
    let updateFrequency: Int
    private(set) var attempted: [Int] = []
    private(set) var excluded: Set<Int> = []

    init(updateFrequency: Int) { self.updateFrequency = max(1, updateFrequency) }

    mutating func attempted(priority: Int) { attempted.append(priority) }

    /// The priorities the next attempt leaves out (the pools drop the exclusion when it
    /// leaves no healthy endpoint, as Envoy falls back to the original load).
    mutating func exclusionForNextAttempt() -> Set<Int> {
        if attempted.count < updateFrequency { return [] }
        if attempted.count % updateFrequency == 0 { excluded.formUnion(attempted) }
        return excluded
    }
}
