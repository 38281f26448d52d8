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

    enum CodingKeys: String, CodingKey, CaseIterable { case refreshIntervalMs, resourceMonitors, actions }

    public init(from decoder: Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
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

    enum CodingKeys: String, CodingKey, CaseIterable { case name, maxHeapSizeBytes, maxActiveDownstreamConnections }

    public init(from decoder: Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        maxHeapSizeBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeapSizeBytes)
        maxActiveDownstreamConnections = try c.decodeIfPresent(Int.self, forKey: .maxActiveDownstreamConnections)
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

    enum CodingKeys: String, CodingKey, CaseIterable { case name, triggers }

    public init(from decoder: Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        triggers = try c.decodeIfPresent([OverloadTriggerConfig].self, forKey: .triggers) ?? []
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

    enum CodingKeys: String, CodingKey, CaseIterable { case name, threshold, scaled }

    public init(from decoder: Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        threshold = try c.decodeIfPresent(ThresholdTriggerConfig.self, forKey: .threshold)
        scaled = try c.decodeIfPresent(ScaledTriggerConfig.self, forKey: .scaled)
    }
}

public struct ThresholdTriggerConfig: Codable, Sendable, Equatable {
    public var value: Double

    public init(value: Double) { self.value = value }

    enum CodingKeys: String, CodingKey, CaseIterable { case value }

    public init(from decoder: Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        value = try decoder.container(keyedBy: CodingKeys.self).decode(Double.self, forKey: .value)
    }
}

public struct ScaledTriggerConfig: Codable, Sendable, Equatable {
    public var scalingThreshold: Double?
    public var saturationThreshold: Double?

    public init(scalingThreshold: Double? = nil, saturationThreshold: Double? = nil) {
        self.scalingThreshold = scalingThreshold
        self.saturationThreshold = saturationThreshold
    }
}

/// Any key, to list what a mapping holds.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Refuses a key the type does not have (e.g. Envoy's snake_case `refresh_interval`),
    /// rather than ignore a setting the user thinks is in force; the error names its path.
    func refuseUnknownFields<K: CodingKey & CaseIterable>(_ keys: K.Type) throws {
        let c = try container(keyedBy: AnyKey.self)
        let known = K.allCases.map(\.stringValue)
        for key in c.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorruptedError(forKey: key, in: c,
                                                   debugDescription: "unknown field (known: \(known.joined(separator: ", ")))")
        }
    }
}
