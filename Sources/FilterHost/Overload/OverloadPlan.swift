import MeshAPI
import NIOCore

/// The overload actions meshd takes, by Envoy's names.
package enum OverloadAction: String, CaseIterable, Sendable {
    /// New requests are answered at once: 503 `envoy overloaded`, flag `OM`.
    case stopAcceptingRequests = "envoy.overload_actions.stop_accepting_requests"
    /// The data listeners stop calling accept(); new connections wait in the kernel's backlog.
    case stopAcceptingConnections = "envoy.overload_actions.stop_accepting_connections"
    /// New connections are accepted and closed at once.
    case rejectIncomingConnections = "envoy.overload_actions.reject_incoming_connections"
    /// The connection of each new request is drained (HTTP/1: `connection: close`; HTTP/2: GOAWAY).
    case disableHTTPKeepAlive = "envoy.overload_actions.disable_http_keepalive"
}

/// The set of actions in force; each event loop keeps a copy, read once per request or accept.
package struct OverloadActions: OptionSet, Sendable, Equatable {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    package init(_ action: OverloadAction) {
        switch action {
        case .stopAcceptingRequests: self = .stopAcceptingRequests
        case .stopAcceptingConnections: self = .stopAcceptingConnections
        case .rejectIncomingConnections: self = .rejectIncomingConnections
        case .disableHTTPKeepAlive: self = .disableHTTPKeepAlive
        }
    }

    package static let stopAcceptingRequests = OverloadActions(rawValue: 1 << 0)
    package static let stopAcceptingConnections = OverloadActions(rawValue: 1 << 1)
    package static let rejectIncomingConnections = OverloadActions(rawValue: 1 << 2)
    package static let disableHTTPKeepAlive = OverloadActions(rawValue: 1 << 3)
}

/// What a resource monitor measures, with its maximum (pressure = used / max).
package enum OverloadResource: Equatable, Sendable {
    /// The process's resident set size (Envoy's `fixed_heap` measures the heap; RSS is what
    /// the kernel's OOM killer and a container's memory limit count).
    case processMemory(maxBytes: Int)
    /// Open downstream connections on the data listeners (not the admin listener).
    case downstreamConnections(max: Int)

    package static let fixedHeap = "envoy.resource_monitors.fixed_heap"
    package static let downstreamConnectionsName = "envoy.resource_monitors.global_downstream_max_connections"
    /// The same monitor's name in Envoy 1.27 to 1.31.
    package static let downstreamConnectionsAlias = "envoy.resource_monitors.downstream_connections"

    package var max: Int {
        switch self {
        case .processMemory(let n), .downstreamConnections(let n): return n
        }
    }
}

/// A validated `overloadManager` config: every name known, every reference resolved,
/// every number in range. Built with the snapshot, so a bad one refuses the whole config.
package struct OverloadPlan: Equatable, Sendable {
    package struct Monitor: Equatable, Sendable {
        package var name: String
        package var resource: OverloadResource
    }

    package struct Trigger: Equatable, Sendable {
        package var monitor: String
        package var threshold: Double
    }

    package struct Action: Equatable, Sendable {
        package var action: OverloadAction
        package var triggers: [Trigger]
    }

    package static let defaultRefreshIntervalMs = 1000

    package var refreshInterval: TimeAmount
    package var monitors: [Monitor]
    package var actions: [Action]

    /// No monitor, no action: what a bootstrap without `overloadManager` gets.
    package static let off = OverloadPlan(refreshInterval: .milliseconds(Int64(defaultRefreshIntervalMs)), monitors: [], actions: [])

    package var isOff: Bool { monitors.isEmpty }

    /// The connection monitor's maximum: as in Envoy, it is also a cap, so a connection past
    /// it is refused at accept whatever the actions (read per accept, hence stored).
    package private(set) var maxDownstreamConnections: Int?

    package init(refreshInterval: TimeAmount, monitors: [Monitor], actions: [Action]) {
        self.refreshInterval = refreshInterval
        self.monitors = monitors
        self.actions = actions
        maxDownstreamConnections = Self.connectionCap(monitors)
    }

    private static func connectionCap(_ monitors: [Monitor]) -> Int? {
        for m in monitors { if case .downstreamConnections(let max) = m.resource { return max } }
        return nil
    }

    package init(_ config: OverloadManagerConfig?, path: String = "overloadManager") throws {
        guard let config else {
            self = .off
            return
        }
        let interval = config.refreshIntervalMs ?? Self.defaultRefreshIntervalMs
        guard interval >= 1 else {
            throw ConfigError(path: "\(path).refreshIntervalMs", reason: "must be at least 1, got \(interval)")
        }
        refreshInterval = .milliseconds(Int64(interval))
        monitors = []
        for (i, m) in config.resourceMonitors.enumerated() {
            let at = "\(path).resourceMonitors[\(i)]"
            if monitors.contains(where: { $0.name == m.name }) {
                throw ConfigError(path: "\(at).name", reason: "duplicate resource monitor '\(m.name)'")
            }
            monitors.append(Monitor(name: m.name, resource: try Self.resource(m, path: at)))
        }
        actions = []
        for (i, a) in config.actions.enumerated() {
            let at = "\(path).actions[\(i)]"
            guard let action = OverloadAction(rawValue: a.name) else {
                let known = OverloadAction.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(path: "\(at).name", reason: "unknown overload action '\(a.name)' (known: \(known))")
            }
            if actions.contains(where: { $0.action == action }) {
                throw ConfigError(path: "\(at).name", reason: "duplicate overload action '\(a.name)'")
            }
            if a.triggers.isEmpty { throw ConfigError(path: "\(at).triggers", reason: "an action needs at least one trigger") }
            var triggers: [Trigger] = []
            for (j, t) in a.triggers.enumerated() {
                triggers.append(try Self.trigger(t, path: "\(at).triggers[\(j)]", monitors: monitors, earlier: triggers))
            }
            actions.append(Action(action: action, triggers: triggers))
        }
        maxDownstreamConnections = Self.connectionCap(monitors)
    }

    private static func resource(_ m: ResourceMonitorConfig, path: String) throws -> OverloadResource {
        func positive(_ value: Int?, _ field: String) throws -> Int {
            guard let value else { throw ConfigError(path: "\(path).\(field)", reason: "required for \(m.name)") }
            guard value >= 1 else { throw ConfigError(path: "\(path).\(field)", reason: "must be at least 1, got \(value)") }
            return value
        }
        func absent(_ value: Int?, _ field: String) throws {
            if value != nil { throw ConfigError(path: "\(path).\(field)", reason: "not a setting of \(m.name)") }
        }
        switch m.name {
        case OverloadResource.fixedHeap:
            try absent(m.maxActiveDownstreamConnections, "maxActiveDownstreamConnections")
            return .processMemory(maxBytes: try positive(m.maxHeapSizeBytes, "maxHeapSizeBytes"))
        case OverloadResource.downstreamConnectionsName, OverloadResource.downstreamConnectionsAlias:
            try absent(m.maxHeapSizeBytes, "maxHeapSizeBytes")
            return .downstreamConnections(max: try positive(m.maxActiveDownstreamConnections, "maxActiveDownstreamConnections"))
        default:
            throw ConfigError(path: "\(path).name", reason: "unknown resource monitor '\(m.name)' (known: "
                              + "\(OverloadResource.fixedHeap), \(OverloadResource.downstreamConnectionsName))")
        }
    }

    private static func trigger(_ t: OverloadTriggerConfig, path: String, monitors: [Monitor],
                                earlier: [Trigger]) throws -> Trigger {
        guard monitors.contains(where: { $0.name == t.name }) else {
            throw ConfigError(path: "\(path).name", reason: "no resource monitor named '\(t.name)' in overloadManager.resourceMonitors")
        }
        if earlier.contains(where: { $0.monitor == t.name }) {
            throw ConfigError(path: "\(path).name", reason: "duplicate trigger for '\(t.name)'")
        }
        if t.scaled != nil {
            throw ConfigError(path: "\(path).scaled", reason: "scaled triggers are not supported; use threshold")
        }
        guard let threshold = t.threshold else {
            throw ConfigError(path: "\(path).threshold", reason: "required (threshold: {value: 0.95})")
        }
        guard threshold.value >= 0, threshold.value <= 1 else {
            throw ConfigError(path: "\(path).threshold.value", reason: "must be between 0 and 1, got \(threshold.value)")
        }
        return Trigger(monitor: t.name, threshold: threshold.value)
    }
}
