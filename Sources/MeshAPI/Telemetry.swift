/// A proxy's telemetry as the control plane resolves it from Istio's mesh config and the
/// Telemetry resources that apply to the proxy (workload > namespace > mesh). Sent as one
/// resource (`telemetry/proxy`) and applied on every config swap, no restart. A proxy's own
/// `--tracing-*` / `--access-log-encoding` flags, where given, win over it.
public struct ProxyTelemetry: Codable, Sendable, Equatable {
    /// nil: no access log (Istio's default `accessLogFile: ""`).
    public var accessLog: AccessLogSettings?
    /// nil: trace context is still propagated, no span is sampled or exported.
    public var tracing: TracingSettings?
    /// Telemetry `metrics[].overrides` for Prometheus, one entry per metric and reporter they
    /// touch; nil or empty: Istio's standard metrics with their standard labels.
    public var metricOverrides: [MetricOverride]?

    public init(accessLog: AccessLogSettings? = nil, tracing: TracingSettings? = nil,
                metricOverrides: [MetricOverride]? = nil) {
        self.accessLog = accessLog
        self.tracing = tracing
        self.metricOverrides = metricOverrides
    }
}

/// Istio's standard metrics, by their Telemetry API names.
public enum IstioMetric: String, Codable, Sendable, CaseIterable {
    case requestCount = "REQUEST_COUNT", requestDuration = "REQUEST_DURATION"
    case requestSize = "REQUEST_SIZE", responseSize = "RESPONSE_SIZE"
    case grpcRequestMessages = "GRPC_REQUEST_MESSAGES", grpcResponseMessages = "GRPC_RESPONSE_MESSAGES"
    case tcpSentBytes = "TCP_SENT_BYTES", tcpReceivedBytes = "TCP_RECEIVED_BYTES"
    case tcpOpenedConnections = "TCP_OPENED_CONNECTIONS", tcpClosedConnections = "TCP_CLOSED_CONNECTIONS"

    public var isTCP: Bool {
        switch self {
        case .tcpSentBytes, .tcpReceivedBytes, .tcpOpenedConnections, .tcpClosedConnections: true
        default: false
        }
    }
}

/// Which proxy reports a series: the client's (`source`, Telemetry mode CLIENT) or the
/// server's (`destination`, mode SERVER).
public enum MetricReporter: String, Codable, Sendable, CaseIterable {
    case source, destination
}

/// The resolved override of one metric as one reporter records it.
public struct MetricOverride: Codable, Sendable, Equatable {
    public var metric: IstioMetric
    public var reporter: MetricReporter
    /// The metric is not recorded.
    public var disabled: Bool
    /// Label name → what to do with it.
    public var tags: [String: TagOverride]

    public enum TagOverride: Codable, Sendable, Equatable {
        /// Set (or add) the label to the expression's value for the request.
        case upsert(expression: String)
        /// Drop the label.
        case remove
    }

    /// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
    public static func isLabelName(_ name: String) -> Bool {
        func letter(_ c: UInt8) -> Bool { c == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c | 0x20) }
        guard let first = name.utf8.first, letter(first) else { return false }
        return name.utf8.allSatisfy { letter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    public init(metric: IstioMetric, reporter: MetricReporter, disabled: Bool = false, tags: [String: TagOverride] = [:]) {
        self.metric = metric
        self.reporter = reporter
        self.disabled = disabled
        self.tags = tags
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
