import MeshAPI

/// A proxy's telemetry (`Bootstrap.telemetry`) from the mesh config and the Telemetry
/// resources that apply to it, with Istio's precedence: a workload's (selector, in its
/// namespace) over its namespace's (no selector) over the mesh's (root namespace, no
/// selector); a more specific level overrides only the fields it sets. At one level the
/// oldest wins: here, the first in load order.
enum TelemetryBuilder {
    /// Merged `tracing[]` / `accessLogging[]` settings, least specific first.
    struct Resolved {
        var accessLogSet = false
        var accessLogProviders: [String] = []
        var accessLogDisabled: Bool?
        var accessLogFilter: String?
        var tracingSet = false
        var tracingProviders: [String] = []
        var sampling: Double?
        var disableSpanReporting: Bool?
        var customTags: [String: Telemetry.CustomTag] = [:]
    }

    /// nil when neither a mesh config nor a Telemetry says anything: the proxy keeps its own
    /// settings (stdout access log, its `--tracing-*` flags).
    static func build(_ ctx: TranslationContext) -> ProxyTelemetry? {
        let mesh = ctx.store.meshConfig
        let applying = applicable(ctx)
        guard mesh != MeshConfig() || !applying.isEmpty else { return nil }
        for t in applying { ctx.use(t.id) }
        let r = resolve(applying)
        let overrides = TelemetryMetrics.resolve(applying, mesh, ctx)
        return ProxyTelemetry(accessLog: accessLog(r, mesh, ctx), tracing: tracing(r, mesh, ctx),
                              metricOverrides: overrides.isEmpty ? nil : overrides)
    }

    /// The Telemetry resources for the proxy, mesh level first, workload level last.
    static func applicable(_ ctx: TranslationContext) -> [Config<Telemetry>] {
        let root = ctx.store.meshConfig.rootNamespace
        let all = ctx.store.telemetries
        let mesh = all.filter { $0.namespace == root && $0.spec.selector == nil }
        let namespace = ctx.proxy.namespace == root ? []
            : all.filter { $0.namespace == ctx.proxy.namespace && $0.spec.selector == nil }
        let workload = all.filter {
            guard $0.namespace == ctx.proxy.namespace, let s = $0.spec.selector else { return false }
            return ctx.proxy.labels.matches(s.matchLabels)
        }
        return [mesh.first, namespace.first, workload.first].compactMap { $0 }
    }

    static func resolve(_ levels: [Config<Telemetry>]) -> Resolved {
        var r = Resolved()
        for t in levels {
            // Entries for one side only (CLIENT / SERVER) are warned: meshd applies both-sided ones.
            if let al = t.spec.accessLogging.first(where: { ($0.mode ?? "CLIENT_AND_SERVER") == "CLIENT_AND_SERVER" }) {
                r.accessLogSet = true
                if !al.providers.isEmpty { r.accessLogProviders = al.providers.map(\.name) }
                if let d = al.disabled { r.accessLogDisabled = d }
                if let f = al.filter { r.accessLogFilter = f }
            }
            if let tr = t.spec.tracing.first(where: { ($0.mode ?? "CLIENT_AND_SERVER") == "CLIENT_AND_SERVER" }) {
                r.tracingSet = true
                if !tr.providers.isEmpty { r.tracingProviders = tr.providers.map(\.name) }
                if let s = tr.randomSamplingPercentage { r.sampling = s }
                if let d = tr.disableSpanReporting { r.disableSpanReporting = d }
                r.customTags.merge(tr.customTags) { _, new in new }
            }
        }
        return r
    }

    // MARK: access log

    static func accessLog(_ r: Resolved, _ mesh: MeshConfig, _ ctx: TranslationContext) -> AccessLogSettings? {
        let encoding = AccessLogEncoding(rawValue: mesh.accessLogEncoding ?? "TEXT") ?? .text
        let meshFile = mesh.accessLogFile.flatMap { $0.isEmpty ? nil : $0 }
        let defaults = mesh.defaultProviders?.accessLogging ?? []
        var providers: [String]
        if r.accessLogSet {
            if r.accessLogDisabled == true { return nil }
            providers = r.accessLogProviders.isEmpty ? defaults : r.accessLogProviders
            // Nothing named anywhere: Istio's built-in `envoy` provider (stdout).
            if providers.isEmpty && meshFile == nil { providers = ["envoy"] }
        } else {
            providers = defaults
        }
        guard let name = providers.first else {
            return meshFile.map { AccessLogSettings(path: $0, encoding: encoding, format: mesh.accessLogFormat, filter: r.accessLogFilter) }
        }
        if providers.count > 1 {
            ctx.warn("Proxy/\(ctx.proxy.namespace)/\(ctx.proxy.name)", "", "one access-log provider per proxy: \(name) is used, \(providers.dropFirst().joined(separator: ", ")) not")
        }
        guard case .envoyFileAccessLog(let file) = TelemetryProviders.kind(name, mesh) else { return nil }
        var settings = AccessLogSettings(path: file.path.isEmpty ? AccessLogSettings.stdout : file.path, encoding: encoding,
                                         format: mesh.accessLogFormat, filter: r.accessLogFilter)
        if let text = file.text {
            settings.encoding = .text
            settings.format = text
        } else if case .object(let labels)? = file.labels {
            settings.encoding = .json
            settings.format = nil
            settings.labels = labels.compactMapValues { if case .string(let s) = $0 { s } else { nil } }
        }
        return settings
    }

    // MARK: tracing

    static func tracing(_ r: Resolved, _ mesh: MeshConfig, _ ctx: TranslationContext) -> TracingSettings? {
        // `enableTracing: false` turns tracing off unless a Telemetry asks for it.
        if mesh.enableTracing == false && !r.tracingSet { return nil }
        let sampling = r.sampling ?? mesh.defaultConfig?.tracingSampling ?? 1
        var settings = TracingSettings(samplingPercentage: min(100, max(0, sampling)))
        let providers = r.tracingProviders.isEmpty ? mesh.defaultProviders?.tracing ?? [] : r.tracingProviders
        if r.disableSpanReporting != true, let name = providers.first,
           case .opentelemetry(let address) = TelemetryProviders.kind(name, mesh) {
            settings.collector = OpenTelemetryProvider(service: collectorHost(address.service), port: address.port)
        }
        if !r.customTags.isEmpty {
            settings.customTags = r.customTags.compactMapValues { (tag) -> TracingSettings.CustomTag? in
                if let v = tag.literal { return .literal(v) }
                if let h = tag.header { return .header(name: h.lowercased(), defaultValue: tag.defaultValue) }
                if let e = tag.environment { return .environment(name: e, defaultValue: tag.defaultValue) }
                return nil
            }
        }
        return settings
    }

    /// Istio's `service` may be `namespace/host`; the proxy connects to the host.
    static func collectorHost(_ service: String) -> String {
        service.split(separator: "/", maxSplits: 1).last.map(String.init) ?? service
    }
}
