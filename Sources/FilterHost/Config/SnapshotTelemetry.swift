import MeshAPI

/// A snapshot's pushed telemetry (`Bootstrap.telemetry`), with its format strings and filter
/// expression parsed once: a bad one refuses the whole config, as any invalid field does.
struct SnapshotTelemetry: Sendable {
    enum AccessLog: Sendable {
        /// Nothing pushed: the proxy's start settings (stdout, Istio's default format).
        case startSettings
        case off
        case on(CompiledAccessLog)
    }

    enum Tracing: Sendable {
        /// Nothing pushed: the proxy's start settings.
        case startSettings
        /// Pushed; nil: tracing disabled (nothing sampled, trace context still propagated).
        case pushed(TracingSettings?)
    }

    var accessLog: AccessLog
    var tracing: Tracing
    var metricOverrides: CompiledMetricOverrides

    static let notPushed = SnapshotTelemetry(accessLog: .startSettings, tracing: .startSettings)

    init(accessLog: AccessLog, tracing: Tracing, metricOverrides: CompiledMetricOverrides = .none) {
        self.accessLog = accessLog
        self.tracing = tracing
        self.metricOverrides = metricOverrides
    }

    init(_ pushed: ProxyTelemetry?) throws {
        guard let pushed else {
            self = .notPushed
            return
        }
        tracing = .pushed(pushed.tracing)
        if let tracing = pushed.tracing, !(0...100).contains(tracing.samplingPercentage) {
            throw ConfigError(path: "telemetry.tracing.samplingPercentage", reason: "must be in 0-100")
        }
        accessLog = try pushed.accessLog.map { .on(try CompiledAccessLog($0)) } ?? .off
        metricOverrides = try CompiledMetricOverrides(pushed.metricOverrides ?? [])
    }
}

/// One access-log destination, ready to render.
struct CompiledAccessLog: Sendable {
    let path: String
    let encoding: AccessLogEncoding
    /// TEXT with a custom format; nil: Istio's default.
    let format: AccessLogFormat?
    /// JSON with custom keys, sorted by key; nil: Istio's default keys.
    let labels: [(String, AccessLogFormat)]?
    let filter: TelemetryExpression?

    init(_ s: AccessLogSettings) throws {
        guard !s.path.isEmpty else { throw ConfigError(path: "telemetry.accessLog.path", reason: "must not be empty") }
        path = s.path
        encoding = s.encoding
        do {
            format = try s.format.map { try AccessLogFormat(parsing: $0) }
        } catch {
            throw ConfigError(path: "telemetry.accessLog.format", reason: "\(error)")
        }
        labels = try s.labels.map { labels in
            try labels.keys.sorted().map { key in
                do { return (key, try AccessLogFormat(parsing: labels[key]!)) } catch {
                    throw ConfigError(path: "telemetry.accessLog.labels.\(key)", reason: "\(error)")
                }
            }
        }
        do {
            filter = try s.filter.map { try TelemetryExpression(parsing: $0, as: .bool) }
        } catch {
            throw ConfigError(path: "telemetry.accessLog.filter", reason: "\(error)")
        }
    }
}
