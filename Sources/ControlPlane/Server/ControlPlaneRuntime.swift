import Foundation
import Logging
import MeshAPI
import NIOConcurrencyHelpers

/// The control plane's loop: (re)load the config directory, keep the last good config when
/// a new one fails validation, know which proxies are connected (sidecars register their
/// workloads by connecting), and push each proxy its translated config when any of that
/// changes. Loading and translating are given as functions, so this type only sequences.
public final class ControlPlaneRuntime<Compiled: Sendable>: Sendable {
    public typealias Compile = @Sendable (_ directory: String) -> Result<Compiled, ConfigProblems>
    public typealias Translate = @Sendable (_ config: Compiled, _ connected: [Meshd_Discovery_V1_Node],
                                           _ proxy: Meshd_Discovery_V1_Node) -> Bootstrap

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
        var pushes = 0
    }

    private let directory: String
    private let compile: Compile
    private let translate: Translate
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    public let hub: ProxyHub

    public init(directory: String, logger: Logger, compile: @escaping Compile, translate: @escaping Translate) {
        self.directory = directory
        self.compile = compile
        self.translate = translate
        self.logger = logger
        self.state = NIOLockedValueBox(State())
        self.hub = ProxyHub(logger: logger, source: { _ in nil })
        hub.setSource { [weak self] node in self?.bootstrap(for: node) }
        hub.setMembershipHandler { [weak self] node, joined in self?.membershipChanged(node, joined) }
    }

    /// Loads the directory; a good config replaces the current one and is pushed.
    /// Returns false (keeping the last good config) when it fails.
    @discardableResult
    public func reload() -> Bool {
        switch compile(directory) {
        case .success(let config):
            let version = state.withLockedValue { s -> Int in
                s.config = config
                s.status.configVersion += 1
                s.status.accepted += 1
                return s.status.configVersion
            }
            logger.info("config loaded", metadata: ["version": "\(version)", "directory": "\(directory)"])
            push()
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

    private func bootstrap(for node: Meshd_Discovery_V1_Node) -> Bootstrap? {
        let (config, connected) = state.withLockedValue { ($0.config, Array($0.connected.values)) }
        guard let config else { return nil }
        return translate(config, connected.sorted { $0.id < $1.id }, node)
    }

    private func membershipChanged(_ node: Meshd_Discovery_V1_Node, _ joined: Bool) {
        state.withLockedValue {
            if joined { $0.connected[node.id] = node } else { $0.connected.removeValue(forKey: node.id) }
        }
        // Other proxies route to this workload (or stop): they all get new endpoints.
        push()
    }

    private func push() {
        state.withLockedValue { $0.pushes += 1 }
        hub.pushAll()
    }
}
