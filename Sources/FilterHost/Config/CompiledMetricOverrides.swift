import MeshAPI

/// The pushed Telemetry metric overrides with their tag expressions parsed, looked up by the
/// stats filters (`StreamControl.snapshot.metricOverrides`) when they record.
package struct CompiledMetricOverrides: Sendable {
    /// One metric as one reporter records it.
    package struct Override: Sendable {
        package let disabled: Bool
        /// By tag name, sorted: the labels after Istio's standard ones come out in this order.
        package let tags: [(name: String, operation: Operation)]
    }

    package enum Operation: Sendable {
        case upsert(TelemetryExpression)
        case remove
    }

    private let byKey: [Key: Override]

    private struct Key: Hashable {
        var metric: IstioMetric
        var reporter: MetricReporter
    }

    package static let none = CompiledMetricOverrides(byKey: [:])

    private init(byKey: [Key: Override]) { self.byKey = byKey }

    package init(_ overrides: [MetricOverride]) throws {
        var byKey: [Key: Override] = [:]
        for o in overrides {
            let path = "telemetry.metricOverrides.\(o.metric.rawValue).\(o.reporter.rawValue)"
            let tags = try o.tags.keys.sorted().map { name -> (name: String, operation: Operation) in
                guard MetricOverride.isLabelName(name) else {
                    throw ConfigError(path: "\(path).tags.\(name)", reason: "not a Prometheus label name")
                }
                switch o.tags[name]! {
                case .remove: return (name, .remove)
                case .upsert(let text):
                    do { return (name, .upsert(try TelemetryExpression(parsing: text, as: .string))) } catch {
                        throw ConfigError(path: "\(path).tags.\(name)", reason: "\(error)")
                    }
                }
            }
            byKey[Key(metric: o.metric, reporter: o.reporter)] = Override(disabled: o.disabled, tags: tags)
        }
        self.byKey = byKey
    }

    package var isEmpty: Bool { byKey.isEmpty }

    /// nil: the metric is recorded with Istio's standard labels.
    package func override(_ metric: IstioMetric, _ reporter: MetricReporter) -> Override? {
        byKey.isEmpty ? nil : byKey[Key(metric: metric, reporter: reporter)]
    }
}

extension ProxySnapshot {
    /// The pushed metric overrides (none when nothing was pushed).
    package var metricOverrides: CompiledMetricOverrides { telemetry.metricOverrides }
}
