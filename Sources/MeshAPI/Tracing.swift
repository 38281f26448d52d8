/// Tracing for one proxy process, read at start (`meshd proxy`: the bootstrap's `tracing`;
/// `meshd sidecar`/`gateway`: their `--tracing-*` flags). The sampling and collector given
/// here win over what the control plane pushes (`ProxyTelemetry.tracing`); nil: the pushed
/// ones apply. Field names follow Istio's MeshConfig and Telemetry.
public struct TracingConfig: Codable, Sendable, Equatable {
    /// Percent of new traces sampled, 0–100; nil: the pushed value, else Istio's default 1. A caller's decision wins.
    public var samplingPercentage: Double?
    /// Where spans go: Istio's `extensionProviders[].opentelemetry` (OTLP/HTTP protobuf,
    /// `POST /v1/traces`). nil: trace context is still propagated, spans are not exported.
    public var opentelemetry: OpenTelemetryProvider?
    /// Facts every span carries (Istio's `istio.*` tags and `node_id`).
    public var meshID: String?
    public var nodeID: String?
    public var canonicalService: String?
    public var canonicalRevision: String?
    public var namespace: String?

    public init(samplingPercentage: Double? = nil, opentelemetry: OpenTelemetryProvider? = nil, meshID: String? = nil,
                nodeID: String? = nil, canonicalService: String? = nil, canonicalRevision: String? = nil,
                namespace: String? = nil) {
        self.samplingPercentage = samplingPercentage
        self.opentelemetry = opentelemetry
        self.meshID = meshID
        self.nodeID = nodeID
        self.canonicalService = canonicalService
        self.canonicalRevision = canonicalRevision
        self.namespace = namespace
    }
}

/// Istio's `MeshConfig.ExtensionProvider.OpenTelemetryTracingProvider`: the collector's host and port.
public struct OpenTelemetryProvider: Codable, Sendable, Hashable {
    public var service: String
    public var port: Int

    public init(service: String, port: Int) {
        self.service = service
        self.port = port
    }
}

/// Istio's `MeshConfig.accessLogEncoding`.
public enum AccessLogEncoding: String, Codable, Sendable, Equatable {
    case text = "TEXT"
    case json = "JSON"
}

/// Envoy's `core.v3.TrafficDirection` for a listener.
public enum TrafficDirection: String, Codable, Sendable, Equatable {
    case inbound = "INBOUND"
    case outbound = "OUTBOUND"
}
