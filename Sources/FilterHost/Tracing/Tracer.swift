import MeshAPI
import NIOCore
import NIOHTTP1

/// A process's tracing: continues or starts the trace of each request, decides sampling and
/// hands sampled spans to the exporter. Immutable and shared by every loop; the per-stream
/// state is the `TraceContext` in `StreamInfo`.
public final class Tracer: Sendable {
    /// Percent of new traces sampled (Istio's default 1 %).
    let samplingPercentage: Double
    public let exporter: SpanExporter?
    /// Tags every span of this proxy carries.
    let proxyTags: [(String, String)]

    public init(config: TracingConfig) {
        samplingPercentage = min(100, max(0, config.samplingPercentage ?? 1))
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
        exporter = config.opentelemetry.map {
            // Istio names the OTel resource `service.name` <canonical service>.<namespace>.
            SpanExporter(host: $0.service, port: $0.port, resource: [("service.name", "\(service).\(namespace)")])
        }
    }

    /// This hop's context: the caller's trace with a new span under the caller's, or a new
    /// trace. The request's trace headers are rewritten to it, so what goes upstream names
    /// this hop's span as the parent.
    package func begin(_ headers: inout HTTPHeaders, random: inout RequestIDGenerator) -> TraceContext {
        var span = random.next()
        if span == 0 { span = 1 }
        let context: TraceContext
        var b3Single = false
        if let incoming = TraceHeaders.extract(headers) {
            b3Single = incoming.usedB3Single
            context = TraceContext(traceIDHigh: incoming.traceIDHigh, traceIDLow: incoming.traceIDLow, spanID: span,
                                   parentSpanID: incoming.parentSpanID,
                                   sampled: incoming.sampled ?? sample(&random), traceState: incoming.traceState)
        } else {
            let decided = TraceHeaders.samplingOnly(headers)
            var low = random.next()
            if low == 0 { low = 1 }
            context = TraceContext(traceIDHigh: random.next(), traceIDLow: low, spanID: span,
                                   sampled: decided ?? sample(&random))
        }
        TraceHeaders.write(context, into: &headers, b3Single: b3Single)
        return context
    }

    private func sample(_ random: inout RequestIDGenerator) -> Bool {
        // Draw in 1/10000ths so 0.01 % steps are honoured.
        Double(random.next() % 10_000) < samplingPercentage * 100
    }

    /// Records the finished stream's span when its trace is sampled and an exporter is set.
    func end(_ info: StreamInfo, kind: SpanRecord.Kind, scheme: String, peer: String?) {
        guard let exporter, let context = info.trace, context.sampled else { return }
        exporter.submit(span(info, context: context, kind: kind, scheme: scheme, peer: peer))
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
