/// A proxy's telemetry as the control plane resolves it from Istio's mesh config and the
/// Telemetry resources that apply to the proxy (workload > namespace > mesh). Sent as one
/// resource (`telemetry/proxy`) and applied on every config swap, no restart. A proxy's own
/// `--tracing-*` / `--access-log-encoding` flags, where given, win over it.
public struct ProxyTelemetry: Codable, Sendable, Equatable {
    /// nil: no access log (Istio's default `accessLogFile: ""`).
    public var accessLog: AccessLogSettings?
    /// nil: trace context is still propagated, no span is sampled or exported.
    public var tracing: TracingSettings?

    public init(accessLog: AccessLogSettings? = nil, tracing: TracingSettings? = nil) {
        self.accessLog = accessLog
        self.tracing = tracing
    }
}

/// Where and how access-log lines are written.
public struct AccessLogSettings: Codable, Sendable, Equatable {
    /// "/dev/stdout" (the proxy's stdout) or a file the proxy appends to.
    public var path: String
    public var encoding: AccessLogEncoding
    /// TEXT: an Envoy format string (`%START_TIME%`, `%REQ(:PATH)%`, …); nil: Istio's default format.
    public var format: String?
    /// JSON encoding with custom keys: key → Envoy format string (`envoyFileAccessLog.logFormat.labels`).
    public var labels: [String: String]?
    /// A CEL expression (Istio's `filter.expression` subset); a stream is logged when it is true.
    public var filter: String?

    public static let stdout = "/dev/stdout"

    public init(path: String = Self.stdout, encoding: AccessLogEncoding = .text, format: String? = nil,
                labels: [String: String]? = nil, filter: String? = nil) {
        self.path = path
        self.encoding = encoding
        self.format = format
        self.labels = labels
        self.filter = filter
    }
}

/// Sampling and span export (Istio's `enableTracing`, `defaultConfig.tracing.sampling`,
/// Telemetry `tracing[]`).
public struct TracingSettings: Codable, Sendable, Equatable {
    /// Percent of new traces sampled, 0–100.
    public var samplingPercentage: Double
    /// The collector (`extensionProviders[].opentelemetry`), resolved to host and port. nil: no export.
    public var collector: OpenTelemetryProvider?
    /// Telemetry `customTags`: tag name → literal value (environment tags already resolved by the
    /// proxy from its environment) or request header.
    public var customTags: [String: CustomTag]?

    public enum CustomTag: Codable, Sendable, Equatable {
        case literal(String)
        case header(name: String, defaultValue: String?)
        case environment(name: String, defaultValue: String?)
    }

    public init(samplingPercentage: Double, collector: OpenTelemetryProvider? = nil, customTags: [String: CustomTag]? = nil) {
        self.samplingPercentage = samplingPercentage
        self.collector = collector
        self.customTags = customTags
    }
}
