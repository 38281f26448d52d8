import MeshAPI

/// Telemetry `metrics[].overrides` resolved for one proxy, as Istio merges them: levels
/// from mesh to workload, each override applied in order to the metrics (`ALL_METRICS`:
/// every one) and reporters (`CLIENT_AND_SERVER`: both) it matches; a later `disabled`
/// replaces an earlier one, tag overrides merge by tag name (the later wins). TCP metrics
/// are not overridden yet: an override naming one is warned, `ALL_METRICS` leaves them as they are.
enum TelemetryMetrics {
    static func resolve(_ levels: [Config<Telemetry>], _ mesh: MeshConfig, _ ctx: TranslationContext? = nil) -> [MetricOverride] {
        var merged: [Key: MetricOverride] = [:]
        for t in levels {
            for (i, m) in t.spec.metrics.enumerated() where reportsToPrometheus(m, mesh) {
                for (j, o) in m.overrides.enumerated() where o.customMetric == nil {
                    if let name = o.metric, IstioMetric(rawValue: name)?.isTCP == true {
                        ctx?.warn(t.id, "spec.metrics[\(i)].overrides[\(j)].match.metric",
                                  "overrides of TCP metrics are not applied: \(name) keeps Istio's standard labels")
                    }
                    for key in keys(o) where !key.metric.isTCP {
                        var entry = merged[key] ?? MetricOverride(metric: key.metric, reporter: key.reporter)
                        if let d = o.disabled { entry.disabled = d }
                        for (tag, change) in o.tagOverrides {
                            if change.operation == "REMOVE" {
                                entry.tags[tag] = .remove
                            } else if let v = change.value {
                                entry.tags[tag] = .upsert(expression: v)
                            }
                        }
                        merged[key] = entry
                    }
                }
            }
        }
        return merged.values.filter { $0.disabled || !$0.tags.isEmpty }
            .sorted { ($0.metric.rawValue, $0.reporter.rawValue) < ($1.metric.rawValue, $1.reporter.rawValue) }
    }

    struct Key: Hashable {
        var metric: IstioMetric
        var reporter: MetricReporter
    }

    static func keys(_ o: Telemetry.Override) -> [Key] {
        let metrics = o.metric.flatMap(IstioMetric.init(rawValue:)).map { [$0] } ?? IstioMetric.allCases
        let reporters: [MetricReporter] = switch o.mode {
        case "CLIENT": [.source]
        case "SERVER": [.destination]
        default: [.source, .destination]
        }
        return metrics.flatMap { m in reporters.map { Key(metric: m, reporter: $0) } }
    }

    /// Only Prometheus is a metrics provider here: an entry naming no provider is for the
    /// mesh's default ones (Istio's default: prometheus).
    static func reportsToPrometheus(_ m: Telemetry.Metrics, _ mesh: MeshConfig) -> Bool {
        let defaults = mesh.defaultProviders?.metrics ?? []
        let names = !m.providers.isEmpty ? m.providers.map(\.name) : defaults.isEmpty ? ["prometheus"] : defaults
        return names.contains { if case .prometheus = TelemetryProviders.kind($0, mesh) { true } else { false } }
    }
}
