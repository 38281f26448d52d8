import Dispatch
import Foundation
import Logging
import MeshAPI
import NIOConcurrencyHelpers

/// The control plane's loop: (re)load the config directory, keep the last good config when
/// a new one fails validation, know which proxies are connected (sidecars register their
/// workloads by connecting), and push each proxy its translated config when any of that
/// changes. Loading and preparing the per-proxy configs are given as functions, so this type
/// only sequences.
///
/// A good config is pushed at once (the directory watcher already waited for quiet). Proxies
/// joining or leaving are batched: the first change schedules one push `debounce` later that
/// carries every change made until then, so a thousand sidecars connecting at once cause a
/// few pushes, not a thousand. A proxy that connects gets its first config with the batch its
/// join starts or joins, so that config already counts it and everyone who joined with it.
public final class ControlPlaneRuntime<Compiled: Sendable>: Sendable {
    public typealias Compile = @Sendable (_ directory: String) -> Result<Compiled, ConfigProblems>
    /// Makes every proxy's config source from a config and the connected proxies (sorted by
    /// id). Called once per change, never concurrently, so it may reuse what it made last time.
    public typealias Prepare = @Sendable (_ config: Compiled, _ connected: [Meshd_Discovery_V1_Node]) -> ProxyHub.ConfigSource

    public struct ConfigProblems: Error, Sendable {
        public var lines: [String]
        public init(_ lines: [String]) { self.lines = lines }
    }

    public struct Status: Sendable, Codable {
        public var configVersion: Int
        public var accepted: Int
        public var rejected: Int
        public var lastRejection: [String]?
        public var lastRejectionAt: Date?
    }

    private struct State {
        var config: Compiled?
        var status = Status(configVersion: 0, accepted: 0, rejected: 0)
        var connected: [String: Meshd_Discovery_V1_Node] = [:]
        var source: ProxyHub.ConfigSource?
        var membershipPushScheduled = false
        var pushes = 0
        /// Rebuilds asked for (a good config, a batch of joins/leaves) and not yet handed to the hub.
        var rebuildsPending = 0
        var rebuildsRequested = 0
    }

    /// Whether the mesh has converged: every connected proxy SYNCED (it acknowledged the last
    /// config it was sent, and it was sent one) and no push pending (no rebuild waiting, no
    /// batch of joins/leaves scheduled, nothing on the push queue). A harness or an operator
    /// waits on `converged` after starting proxies or changing config.
    public struct Convergence: Sendable, Codable {
        public var configVersion: Int
        public var pushPending: Bool
        public var converged: Bool
        public var proxies: [ProxyHub.ProxyStatus]
    }

    private let directory: String
    private let compile: Compile
    private let prepare: Prepare
    private let debounce: TimeInterval
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// Where sources are prepared and pushes started, one at a time.
    private let updates = DispatchQueue(label: "meshd.control-plane.updates")
    public let hub: ProxyHub

    public init(directory: String, logger: Logger, debounce: TimeInterval = 0.1,
                compile: @escaping Compile, prepare: @escaping Prepare) {
        self.directory = directory
        self.compile = compile
        self.prepare = prepare
        self.debounce = debounce
        self.logger = logger
        self.state = NIOLockedValueBox(State())
        self.hub = ProxyHub(logger: logger, source: { _ in nil }, firstPush: .withNextPushAll)
        hub.setSource { [weak self] node in self?.resources(for: node) }
        hub.setMembershipHandler { [weak self] node, joined in self?.membershipChanged(node, joined) }
    }

    /// Loads the directory; a good config replaces the current one and is pushed.
    /// Returns false (keeping the last good config) when it fails. With `mayRefuse: false` a
    /// failure is not recorded (not logged as a refusal, not counted): the directory watcher
    /// tries again once the files had more time to settle, since a writer may be mid-file.
    @discardableResult
    public func reload(mayRefuse: Bool = true) -> Bool {
        let started = DispatchTime.now()
        switch compile(directory) {
        case .success(let config):
            let version = state.withLockedValue { s -> Int in
                s.config = config
                s.status.configVersion += 1
                s.status.accepted += 1
                s.rebuildsPending += 1
                s.rebuildsRequested += 1
                return s.status.configVersion
            }
            logger.info("config loaded", metadata: ["version": "\(version)", "directory": "\(directory)",
                                                    "load_ms": "\(Self.milliseconds(since: started))"])
            updates.sync { rebuildAndPush() }
            return true
        case .failure(let problems) where !mayRefuse:
            logger.debug("config does not load yet; waiting for the files to settle",
                         metadata: ["reason": "\(problems.lines.first ?? "")"])
            return false
        case .failure(let problems):
            state.withLockedValue {
                $0.status.rejected += 1
                $0.status.lastRejection = problems.lines
                $0.status.lastRejectionAt = Date()
            }
            for line in problems.lines.prefix(20) {
                logger.error("config refused, keeping the last good one", metadata: ["reason": "\(line)"])
            }
            return false
        }
    }

    public var status: Status { state.withLockedValue { $0.status } }

    /// Pending work is looked at before and after the proxies' states: converged only if
    /// nothing was pending either time and no push was scheduled in between.
    public var convergence: Convergence {
        func pending() -> (busy: Bool, config: Int, requested: Int, pushes: Int) {
            let (busy, config, requested) = state.withLockedValue {
                ($0.rebuildsPending > 0 || $0.membershipPushScheduled, $0.status.configVersion, $0.rebuildsRequested)
            }
            let work = hub.pushWorkState
            return (busy || work.pending > 0, config, requested, work.scheduled)
        }
        let before = pending()
        let proxies = hub.statuses
        let after = pending()
        let quiet = !before.busy && !after.busy && before.requested == after.requested && before.pushes == after.pushes
        return Convergence(configVersion: after.config, pushPending: after.busy || !quiet,
                           converged: quiet && proxies.allSatisfy { $0.status == .synced }, proxies: proxies)
    }
    public var pushCount: Int { state.withLockedValue { $0.pushes } }

    private func resources(for node: Meshd_Discovery_V1_Node) -> ProxyResources? {
        state.withLockedValue { $0.source }?(node)
    }

    private func membershipChanged(_ node: Meshd_Discovery_V1_Node, _ joined: Bool) {
        // Other proxies route to this workload (or stop): they all get new endpoints, batched.
        let schedule = state.withLockedValue { s -> Bool in
            if joined { s.connected[node.id] = node } else { s.connected.removeValue(forKey: node.id) }
            guard !s.membershipPushScheduled else { return false }
            s.membershipPushScheduled = true
            s.rebuildsPending += 1
            s.rebuildsRequested += 1
            return true
        }
        guard schedule else { return }
        updates.asyncAfter(deadline: .now() + debounce) { [weak self] in
            guard let self else { return }
            self.state.withLockedValue { $0.membershipPushScheduled = false }
            self.rebuildAndPush()
        }
    }

    static func milliseconds(since start: DispatchTime) -> Int {
        Int((DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000)
    }

    /// On `updates`: a new source from the current config and proxies, then a push to all.
    /// Each call answers one rebuild asked for (`rebuildsPending`); it counts as pending until
    /// the hub has the push queued, so there is no moment when neither shows it.
    private func rebuildAndPush() {
        defer { state.withLockedValue { $0.rebuildsPending -= 1 } }
        let (config, connected) = state.withLockedValue { ($0.config, Array($0.connected.values)) }
        guard let config else { return }
        let source = prepare(config, connected.sorted { $0.id < $1.id })
        state.withLockedValue {
            $0.source = source
            $0.pushes += 1
        }
        hub.pushAll()
    }
}
