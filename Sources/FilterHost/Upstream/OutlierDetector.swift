import MeshAPI
import NIOCore

/// Envoy's consecutive-errors outlier detection for one cluster, as a value type driven by
/// request outcomes and the clock (unit-tested alone; `OutlierDetectors` shares one per
/// cluster across the loops).
///
/// A host is ejected as soon as a counter reaches its threshold, unless the ejected share of
/// the hosts is already at `maxEjectionPercent`. It stays out for base time × the number of
/// times it was ejected (capped), and comes back at the first sweep (every `interval`) after
/// that; every sweep it spends in service takes one off that number.
struct OutlierDetector {
    enum Outcome: Equatable {
        /// The upstream answered with this status.
        case response(Int)
        /// Connect failure, reset or protocol error: no answer from the upstream.
        case localOriginFailure
        /// A connection was made (resets the local-origin count when split).
        case localOriginSuccess
    }

    enum Detector: String, Sendable {
        case consecutive5xx = "consecutive_5xx"
        case consecutiveGatewayFailure = "consecutive_gateway_failure"
        case consecutiveLocalOriginFailure = "consecutive_local_origin_failure"
    }

    enum Action: Equatable {
        case none
        case ejected(Detector)
        /// Over a threshold but `maxEjectionPercent` held it back (ejections_overflow).
        case overflow(Detector)
    }

    struct Host {
        var consecutive5xx = 0
        var consecutiveGateway = 0
        var consecutiveLocal = 0
        /// Times ejected, less one per sweep spent in service: the ejection time multiplier.
        var ejections = 0
        var ejectedUntil: NIODeadline?
    }

    var config: OutlierDetectionConfig
    private(set) var hosts: [String: Host] = [:]
    private var nextSweep: NIODeadline?

    init(config: OutlierDetectionConfig) { self.config = config }

    private var split: Bool { config.splitExternalLocalOriginErrors ?? false }
    private var interval: TimeAmount { .milliseconds(Int64(max(1, config.intervalMs ?? 10_000))) }

    func isEjected(_ host: String) -> Bool { hosts[host]?.ejectedUntil != nil }
    var ejectedCount: Int { hosts.values.filter { $0.ejectedUntil != nil }.count }

    /// Counts an outcome of `host`, one of `hostCount` in the cluster.
    mutating func record(_ outcome: Outcome, host name: String, hostCount: Int, now: NIODeadline) -> Action {
        sweepIfDue(now: now)
        var h = hosts[name, default: Host()]
        defer { hosts[name] = h }
        guard h.ejectedUntil == nil else { return .none }
        var tripped: Detector?
        switch outcome {
        case .response(let status):
            if status >= 500 {
                h.consecutive5xx += 1
                if [502, 503, 504].contains(status) { h.consecutiveGateway += 1 }
            } else {
                h.consecutive5xx = 0
                h.consecutiveGateway = 0
            }
        case .localOriginFailure:
            if split {
                h.consecutiveLocal += 1
            } else {
                // Unsplit, Envoy counts them as the 5xx / gateway errors it answers for them.
                h.consecutive5xx += 1
                h.consecutiveGateway += 1
            }
        case .localOriginSuccess:
            if split { h.consecutiveLocal = 0 }
        }
        if reached(h.consecutive5xx, config.consecutive5xx ?? 5) { tripped = .consecutive5xx }
        else if reached(h.consecutiveGateway, config.consecutiveGatewayFailure ?? 0) { tripped = .consecutiveGatewayFailure }
        else if split, reached(h.consecutiveLocal, config.consecutiveLocalOriginFailure ?? 5) {
            tripped = .consecutiveLocalOriginFailure
        }
        guard let detector = tripped else { return .none }
        h.consecutive5xx = 0
        h.consecutiveGateway = 0
        h.consecutiveLocal = 0
        // Envoy: ejected only while the ejected share is below the maximum.
        let maxPercent = config.maxEjectionPercent ?? 10
        guard hostCount > 0, ejectedCount * 100 < maxPercent * hostCount else { return .overflow(detector) }
        h.ejections += 1
        let base = Int64(config.baseEjectionTimeMs ?? 30_000)
        let cap = max(base, Int64(config.maxEjectionTimeMs ?? 300_000))
        h.ejectedUntil = now + .milliseconds(min(base * Int64(h.ejections), cap))
        if nextSweep == nil { nextSweep = now + interval }
        return .ejected(detector)
    }

    private func reached(_ count: Int, _ threshold: Int) -> Bool { threshold > 0 && count >= threshold }

    /// The interval sweep, run lazily by whoever looks next: hosts whose time is up come
    /// back; hosts in service since the last sweep have their multiplier lowered.
    /// Returns the hosts brought back.
    @discardableResult
    mutating func sweepIfDue(now: NIODeadline) -> [String] {
        guard let due = nextSweep, now >= due else { return [] }
        var back: [String] = []
        for (name, var h) in hosts {
            if let until = h.ejectedUntil {
                if now >= until {
                    h.ejectedUntil = nil
                    back.append(name)
                }
            } else if h.ejections > 0 {
                h.ejections -= 1
            }
            hosts[name] = h
        }
        // Sweeps continue while something is left to age; they stop when all is back to zero.
        let idle = hosts.values.allSatisfy { $0.ejectedUntil == nil && $0.ejections == 0 }
        nextSweep = idle ? nil : now + interval
        return back.sorted()
    }

    /// Forgets hosts no longer in the cluster.
    mutating func keep(only current: Set<String>) {
        hosts = hosts.filter { current.contains($0.key) }
    }
}
