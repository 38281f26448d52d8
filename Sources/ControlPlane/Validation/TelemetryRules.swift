import MeshAPI

/// Checks for Telemetry: provider names the mesh config declares (of a kind that fits),
/// sampling percentages, custom tags, and filter / tag expressions meshd can evaluate.
enum TelemetryRules {
    static func check(_ t: Telemetry, meshConfig: MeshConfig, _ c: inout Issues) {
        if t.selector != nil && (!t.targetRefs.isEmpty || t.targetRef != nil) {
            c.add("spec", "only one of selector or targetRefs may be set")
        }
        for (i, tr) in t.tracing.enumerated() {
            let p = "spec.tracing[\(i)]"
            providers(tr.providers, p, meshConfig, want: "opentelemetry", &c) {
                if case .opentelemetry = $0 { true } else { false }
            }
            if let v = tr.randomSamplingPercentage, !(0...100).contains(v) {
                c.add(p + ".randomSamplingPercentage", "percentage \(v) must be in 0-100")
            }
            for (name, tag) in tr.customTags.sorted(by: { $0.key < $1.key }) {
                let kinds = [tag.literal, tag.header, tag.environment, tag.formatter].compactMap { $0 }
                if kinds.count != 1 {
                    c.add("\(p).customTags.\(name)", "a custom tag has exactly one of literal, environment, header, formatter")
                }
            }
        }
        for (i, al) in t.accessLogging.enumerated() {
            let p = "spec.accessLogging[\(i)]"
            providers(al.providers, p, meshConfig, want: "envoyFileAccessLog", &c) {
                if case .envoyFileAccessLog = $0 { true } else { false }
            }
            if let e = al.filter {
                do { _ = try TelemetryExpression(parsing: e, as: .bool) } catch {
                    c.add(p + ".filter.expression", "invalid expression: \(error)")
                }
            }
        }
        for (i, m) in t.metrics.enumerated() {
            let p = "spec.metrics[\(i)]"
            providers(m.providers, p, meshConfig, want: "prometheus", &c) {
                if case .prometheus = $0 { true } else { false }
            }
            for (j, o) in m.overrides.enumerated() {
                if o.metric != nil && o.customMetric != nil {
                    c.add("\(p).overrides[\(j)].match", "only one of metric or customMetric may be set")
                }
                for (tag, override) in o.tagOverrides.sorted(by: { $0.key < $1.key }) {
                    let tp = "\(p).overrides[\(j)].tagOverrides.\(tag)"
                    if !MetricOverride.isLabelName(tag) {
                        c.add(tp, "\"\(tag)\" is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
                    }
                    if override.operation == "REMOVE" {
                        if override.value != nil { c.add(tp + ".value", "a REMOVE override takes no value") }
                        continue
                    }
                    guard let value = override.value, !value.isEmpty else {
                        c.add(tp + ".value", "an UPSERT override needs a value expression")
                        continue
                    }
                    do { _ = try TelemetryExpression(parsing: value, as: .string) } catch {
                        c.add(tp + ".value", "invalid expression: \(error)")
                    }
                }
            }
        }
    }

    /// Each provider must be declared in the mesh config (or be Istio's built-in `prometheus`
    /// or `envoy`) and be of the kind this section uses.
    private static func providers(_ refs: [Telemetry.ProviderRef], _ path: String, _ mesh: MeshConfig, want: String,
                                  _ c: inout Issues, fits: (ExtensionProvider.Kind) -> Bool) {
        for (j, ref) in refs.enumerated() {
            let p = "\(path).providers[\(j)].name"
            guard !ref.name.isEmpty else {
                c.add(p, "provider name is required")
                continue
            }
            guard let kind = TelemetryProviders.kind(ref.name, mesh) else {
                let known = TelemetryProviders.names(mesh).joined(separator: ", ")
                c.add(p, "unknown provider \"\(ref.name)\" (the mesh config's extensionProviders and Istio's built-in ones: \(known))")
                continue
            }
            if !fits(kind) { c.add(p, "provider \"\(ref.name)\" is not an \(want) provider") }
        }
    }
}

/// The providers a Telemetry may name: the mesh config's `extensionProviders`, and Istio's
/// built-in `prometheus` and `envoy` (stdout access log) unless it redefines them.
enum TelemetryProviders {
    static func kind(_ name: String, _ mesh: MeshConfig) -> ExtensionProvider.Kind? {
        if let p = mesh.provider(named: name) { return p.kind }
        switch name {
        case "prometheus": return .prometheus
        case "envoy": return .envoyFileAccessLog(.stdout)
        default: return nil
        }
    }

    static func names(_ mesh: MeshConfig) -> [String] {
        Set(mesh.extensionProviders.map(\.name) + ["prometheus", "envoy"]).sorted()
    }
}
