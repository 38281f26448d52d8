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
    /// Returns false (keeping the last good config) when it fails.
    @discardableResult
    public func reload() -> Bool {
        let started = DispatchTime.now()
        switch compile(directory) {
        case .success(let config):
            let version = state.withLockedValue { s -> Int in
                s.config = config
                s.status.configVersion += 1
                s.status.accepted += 1
                return s.status.configVersion
            }
            logger.info("config loaded", metadata: ["version": "\(version)", "directory": "\(directory)",
                                                    "load_ms": "\(Self.milliseconds(since: started))"])
            updates.sync { rebuildAndPush() }
            return true
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
    public var pushCount: Int { state.withLockedValue { $0.pushes } }

    private func resources(for node: Meshd_Discovery_V1_Node) -> ProxyResources? {
        state.withLockedValue { $0.source }?(node)
    }

    private func membershipChanged(_ node: Meshd_Discovery_V1_Node, _ joined: Bool) {
        // Other proxies route to this workload (or stop): they all get new endpoints, batched.
        let schedule = state.withLockedValue { s -> Bool in
            if joined { s.connected[node.id] = node } else { s.connected.removeValue(forKey: node.id) }
            defer { s.membershipPushScheduled = true }
            return !s.membershipPushScheduled
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
    private func rebuildAndPush() {
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
