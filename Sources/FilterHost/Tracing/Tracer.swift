import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A process's tracing: continues or starts the trace of each request, decides sampling and
/// hands sampled spans to the exporter. Immutable and shared by every loop; the per-stream
/// state is the `TraceContext` in `StreamInfo`.
public final class Tracer: Sendable {
    /// Percent of new traces sampled, as the proxy was started (a flag); nil: not given, the
    /// pushed telemetry's or Istio's default 1 % applies.
    let startSampling: Double?
    /// The collector the proxy was started with; it wins over a pushed one.
    let startCollector: OpenTelemetryProvider?
    /// Tags every span of this proxy carries.
    let proxyTags: [(String, String)]
    /// The OTel resource every export names.
    private let resource: [(String, String)]
    /// One exporter (and thread) per collector ever used, so a pushed change of collector
    /// needs no restart; kept for the process's life (a handful at most).
    private let exporters = NIOLockedValueBox<[OpenTelemetryProvider: SpanExporter]>([:])

    public init(config: TracingConfig) {
        startSampling = config.samplingPercentage.map { min(100, max(0, $0)) }
        startCollector = config.opentelemetry
        let service = config.canonicalService ?? "unknown"
        let namespace = config.namespace ?? "default"
        proxyTags = [
            ("istio.canonical_revision", config.canonicalRevision ?? "latest"),
            ("istio.canonical_service", service),
            ("istio.mesh_id", config.meshID ?? "cluster.local"),
            ("istio.namespace", namespace),
            ("node_id", config.nodeID ?? "-"),
            ("component", "proxy"),
        ]
        // Istio names the OTel resource `service.name` <canonical service>.<namespace>.
        resource = [("service.name", "\(service).\(namespace)")]
        if let collector = startCollector { _ = exporter(for: collector) }
    }

    /// Every exporter made so far (for counters and shutdown).
    public var allExporters: [SpanExporter] { exporters.withLockedValue { Array($0.values) } }

    func exporter(for collector: OpenTelemetryProvider) -> SpanExporter {
        exporters.withLockedValue { map in
            if let e = map[collector] { return e }
            let e = SpanExporter(host: collector.service, port: collector.port, resource: resource)
            map[collector] = e
            return e
        }
    }

    /// The sampling percentage for new traces under `telemetry`: the start flag, else the
    /// pushed value (0 when tracing is pushed off), else Istio's default 1 %.
    func samplingPercentage(_ telemetry: SnapshotTelemetry) -> Double {
        if let startSampling { return startSampling }
        switch telemetry.tracing {
        case .startSettings: return 1
        case .pushed(let t): return t?.samplingPercentage ?? 0
        }
    }

    func collector(_ telemetry: SnapshotTelemetry) -> OpenTelemetryProvider? {
        if let startCollector { return startCollector }
        if case .pushed(let t?) = telemetry.tracing { return t.collector }
        return nil
    }

    /// This hop's context: the caller's trace with a new span under the caller's, or a new
    /// trace. The request's trace headers are rewritten to it, so what goes upstream names
    /// this hop's span as the parent.
    func begin(_ headers: inout HTTPHeaders, random: inout RequestIDGenerator,
                       telemetry: SnapshotTelemetry = .notPushed) -> TraceContext {
        let percent = samplingPercentage(telemetry)
        var span = random.next()
        if span == 0 { span = 1 }
        let context: TraceContext
        var b3Single = false
        if let incoming = TraceHeaders.extract(headers) {
            b3Single = incoming.usedB3Single
            context = TraceContext(traceIDHigh: incoming.traceIDHigh, traceIDLow: incoming.traceIDLow, spanID: span,
                                   parentSpanID: incoming.parentSpanID,
                                   sampled: incoming.sampled ?? sample(&random, percent), traceState: incoming.traceState)
        } else {
            let decided = TraceHeaders.samplingOnly(headers)
            var low = random.next()
            if low == 0 { low = 1 }
            context = TraceContext(traceIDHigh: random.next(), traceIDLow: low, spanID: span,
                                   sampled: decided ?? sample(&random, percent))
        }
        TraceHeaders.write(context, into: &headers, b3Single: b3Single)
        return context
    }

    private func sample(_ random: inout RequestIDGenerator, _ samplingPercentage: Double) -> Bool {
        // Draw in 1/10000ths so 0.01 % steps are honoured.
        Double(random.next() % 10_000) < samplingPercentage * 100
    }

    /// Records the finished stream's span when its trace is sampled and an exporter is set.
    func end(_ info: StreamInfo, kind: SpanRecord.Kind, scheme: String, peer: String?, telemetry: SnapshotTelemetry = .notPushed,
             requestHeaders: HTTPHeaders? = nil) {
        guard let context = info.trace, context.sampled, let collector = collector(telemetry) else { return }
        var record = span(info, context: context, kind: kind, scheme: scheme, peer: peer)
        if case .pushed(let t?) = telemetry.tracing, let custom = t.customTags {
            record.tags += Self.customTags(custom, requestHeaders)
        }
        exporter(for: collector).submit(record)
    }

    /// Telemetry `customTags`, sorted by name; a header or variable that is absent takes its
    /// default, or leaves the tag out.
    static func customTags(_ tags: [String: TracingSettings.CustomTag], _ headers: HTTPHeaders?) -> [(String, String)] {
        tags.keys.sorted().compactMap { name in
            let value: String?
            switch tags[name]! {
            case .literal(let v): value = v
            case .header(let h, let d): value = headers?.first(name: h) ?? d
            case .environment(let e, let d): value = ProcessInfo.processInfo.environment[e] ?? d
            }
            return value.map { (name, $0) }
        }
    }

    func span(_ info: StreamInfo, context: TraceContext, kind: SpanRecord.Kind, scheme: String,
              peer: String?) -> SpanRecord {
        let start = UInt64(max(0, info.startWallTime) * 1e9)
        let elapsed = UInt64(max(0, (NIODeadline.now() - info.startTime).nanoseconds))
        let code = info.responseCode ?? 0
        var tags = proxyTags
        tags += [
            ("http.url", "\(scheme)://\(info.authority)\(info.path)"),
            ("http.method", info.method),
            ("http.protocol", info.protocolVersion.rawValue),
            ("downstream_cluster", "-"),
            ("user_agent", info.userAgent ?? "-"),
            ("request_size", String(info.bytesReceived)),
            ("response_size", String(info.bytesSent)),
            ("http.status_code", String(code)),
            ("response_flags", info.flagsString),
            ("upstream_cluster", info.clusterName ?? "-"),
            ("upstream_cluster.name", info.clusterName ?? "-"),
            ("peer.address", peer ?? "-"),
            ("guid:x-request-id", info.requestID ?? "-"),
        ]
        for (key, value) in info.spanTags.sorted(by: { $0.key < $1.key }) {
            tags.removeAll { $0.0 == key }
            tags.append((key, value))
        }
        let isError = code >= 500 || code == 0
        if isError { tags.append(("error", "true")) }
        return SpanRecord(context: context, name: Self.operationName(authority: info.authority), kind: kind,
                          startUnixNano: start, endUnixNano: start + elapsed, tags: tags, isError: isError)
    }

    /// Istio's route decorator: `<host>:<port>/*`.
    static func operationName(authority: String) -> String { authority + "/*" }
}
