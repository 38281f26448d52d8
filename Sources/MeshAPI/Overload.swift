/// Envoy's overload manager (`envoy.config.overload.v3.OverloadManager`), in the bootstrap's
/// camelCase: resource monitors report a pressure (used / max), and actions whose trigger
/// thresholds the pressure reaches protect the proxy (shed requests, stop accepting).
/// Absent: no monitor runs and no action is ever taken.
public struct OverloadManagerConfig: Codable, Sendable, Equatable {
    /// How often every monitor is read (Envoy's `refresh_interval`; default 1000 ms).
    public var refreshIntervalMs: Int?
    public var resourceMonitors: [ResourceMonitorConfig]
    public var actions: [OverloadActionConfig]

    public init(refreshIntervalMs: Int? = nil, resourceMonitors: [ResourceMonitorConfig] = [],
                actions: [OverloadActionConfig] = []) {
        self.refreshIntervalMs = refreshIntervalMs
        self.resourceMonitors = resourceMonitors
        self.actions = actions
    }

    enum CodingKeys: String, CodingKey { case refreshIntervalMs, resourceMonitors, actions }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        refreshIntervalMs = try c.decodeIfPresent(Int.self, forKey: .refreshIntervalMs)
        resourceMonitors = try c.decodeIfPresent([ResourceMonitorConfig].self, forKey: .resourceMonitors) ?? []
        actions = try c.decodeIfPresent([OverloadActionConfig].self, forKey: .actions) ?? []
    }
}

/// One resource monitor, by Envoy's extension name, with its one setting flattened in:
/// `envoy.resource_monitors.fixed_heap` takes `maxHeapSizeBytes`,
/// `envoy.resource_monitors.global_downstream_max_connections` takes `maxActiveDownstreamConnections`.
public struct ResourceMonitorConfig: Codable, Sendable, Equatable {
    public var name: String
    public var maxHeapSizeBytes: Int?
    public var maxActiveDownstreamConnections: Int?

    public init(name: String, maxHeapSizeBytes: Int? = nil, maxActiveDownstreamConnections: Int? = nil) {
        self.name = name
        self.maxHeapSizeBytes = maxHeapSizeBytes
        self.maxActiveDownstreamConnections = maxActiveDownstreamConnections
    }
}

/// An action (`envoy.overload_actions.*`) and the triggers that make it active: it is
/// active while any trigger fires (Envoy: the action's state is the maximum of its triggers').
public struct OverloadActionConfig: Codable, Sendable, Equatable {
    public var name: String
    public var triggers: [OverloadTriggerConfig]

    public init(name: String, triggers: [OverloadTriggerConfig]) {
        self.name = name
        self.triggers = triggers
    }
}

/// Envoy's `Trigger`: the monitor it reads, and a `threshold` (fires when pressure >= value).
/// `scaled` is decoded only so that it is refused by name rather than ignored.
public struct OverloadTriggerConfig: Codable, Sendable, Equatable {
    public var name: String
    public var threshold: ThresholdTriggerConfig?
    public var scaled: ScaledTriggerConfig?

    public init(name: String, threshold: ThresholdTriggerConfig? = nil, scaled: ScaledTriggerConfig? = nil) {
        self.name = name
        self.threshold = threshold
        self.scaled = scaled
    }
}

public struct ThresholdTriggerConfig: Codable, Sendable, Equatable {
    public var value: Double

    public init(value: Double) { self.value = value }
}

public struct ScaledTriggerConfig: Codable, Sendable, Equatable {
    public var scalingThreshold: Double?
    public var saturationThreshold: Double?

    public init(scalingThreshold: Double? = nil, saturationThreshold: Double? = nil) {
        self.scalingThreshold = scalingThreshold
        self.saturationThreshold = saturationThreshold
    }
}
