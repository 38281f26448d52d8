import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers

/// The control plane's loop: (re)load the config directory (what `compile` refuses of it is
/// reported, the rest applies), know which proxies are connected (sidecars register their
/// workloads by connecting), and push each proxy its translated config when any of that
/// changes. Loading and preparing the per-proxy configs are given as functions, so this type
/// only sequences.
///
/// A good config is pushed at once (the directory watcher already waited for quiet). Proxies
/// joining or leaving are batched: the first change schedules one push `debounce` later that
/// carries every change made until then, so a thousand sidecars connecting at once cause a
/// few pushes, not a thousand. A proxy that connects gets its first config with the batch its
/// join starts or joins, so that config already counts it and everyone who joined with it.
public final class ControlPlaneRuntime<Compiled: Sendable & Equatable>: Sendable {
    public typealias Compile = @Sendable (_ directory: String) -> Compilation
    /// Makes every proxy's config source from a config and the connected proxies (sorted by
    /// id). Called once per change, never concurrently, so it may reuse what it made last time.
    public typealias Prepare = @Sendable (_ config: Compiled, _ connected: [Meshd_Discovery_V1_Node]) -> ProxyHub.ConfigSource

    /// What one load gives: the config to serve (nil: nothing can be served from this load,
    /// e.g. the directory is unreadable), what was refused (`file:line: …`, one line each; the
    /// rest of the directory still applies) and the warnings about what is served.
    public struct Compilation: Sendable {
        public var config: Compiled?
        public var refused: [String]
        public var warnings: [String]

        public init(config: Compiled?, refused: [String] = [], warnings: [String] = []) {
            self.config = config
            self.refused = refused
            self.warnings = warnings
        }
    }

    public struct Status: Sendable, Codable {
        public var configVersion: Int
        /// Loads that changed what is served.
        public var accepted: Int
        /// Loads that refused something.
        public var rejected: Int
        /// The errors of the last load that refused something, and when.
        public var lastRejection: [String]?
        public var lastRejectionAt: Date?
        /// What the current directory has refused (empty when every file applies).
        public var refused: [String] = []
        /// Warnings about what is served: fields meshd does not enforce, kinds it skips.
        public var warnings: [String] = []
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
        /// When the earliest change not yet handed to the hub was taken up.
        var changedAt: DispatchTime?
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

    /// Loads the directory: what it refuses is reported (logged, counted, shown in `status`),
    /// and a config that differs from the current one replaces it and is pushed. Returns false
    /// when something was refused. With `mayRefuse: false` a load that refuses something is
    /// not recorded at all (not logged, not counted, not applied): the directory watcher tries
    /// again once the files had more time to settle, since a writer may be mid-file.
    @discardableResult
    public func reload(mayRefuse: Bool = true) -> Bool {
        let started = DispatchTime.now()
        let compiled = compile(directory)
        if !mayRefuse && (compiled.config == nil || !compiled.refused.isEmpty) {
            logger.debug("config does not load yet; waiting for the files to settle",
                         metadata: ["reason": "\(compiled.refused.first ?? "")"])
            return false
        }
        let (version, newWarnings) = state.withLockedValue { s -> (Int?, [String]) in
            if !compiled.refused.isEmpty {
                s.status.rejected += 1
                s.status.lastRejection = compiled.refused
                s.status.lastRejectionAt = Date()
            }
            s.status.refused = compiled.refused
            // Logged once per change: only what the previous load did not already warn about.
            let before = Set(s.status.warnings)
            s.status.warnings = compiled.warnings
            let fresh = compiled.warnings.filter { !before.contains($0) }
            // A load that refused a file and changed nothing else is not a new version.
            guard let config = compiled.config, compiled.refused.isEmpty || config != s.config else { return (nil, fresh) }
            s.config = config
            s.status.configVersion += 1
            s.status.accepted += 1
            s.rebuildsPending += 1
            s.rebuildsRequested += 1
            s.changedAt = s.changedAt ?? started
            return (s.status.configVersion, fresh)
        }
        for line in compiled.refused.prefix(20) {
            logger.error("config file refused; the other files apply", metadata: ["reason": "\(line)"])
        }
        for line in newWarnings.prefix(50) {
            logger.warning("config accepted with a warning", metadata: ["warning": "\(line)"])
        }
        if let version {
            logger.info("config loaded", metadata: ["version": "\(version)", "directory": "\(directory)",
                                                    "load_ms": "\(Self.milliseconds(since: started))"])
            updates.sync { rebuildAndPush() }
        }
        return compiled.config != nil && compiled.refused.isEmpty
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
            s.changedAt = s.changedAt ?? .now()
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
        let (config, connected, changedAt) = state.withLockedValue { s in
            defer { s.changedAt = nil }
            return (s.config, Array(s.connected.values), s.changedAt ?? .now())
        }
        guard let config else { return }
        let source = prepare(config, connected.sorted { $0.id < $1.id })
        state.withLockedValue {
            $0.source = source
            $0.pushes += 1
        }
        hub.pushAll(changedAt: changedAt)
    }
}
