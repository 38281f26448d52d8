import FilterHost
import MeshAPI
import NIOConcurrencyHelpers
import Transport

/// Who reports a request: the client's proxy (outbound, gateways) or the server's (inbound).
typealias Reporter = MetricReporter

/// Everything Istio's standard labels are made of, for one finished request.
struct IstioRequestFacts: Hashable, Sendable {
    var reporter: Reporter
    var local: WorkloadFacts
    /// The other end's facts from the exchange headers; nil when it sent none (not in the mesh).
    var peer: WorkloadFacts?
    var destinationService: String
    /// `http`, `grpc`, or `tcp` for a TCP connection.
    var requestProtocol: String
    /// Nil for a TCP connection: its series have no response_code or grpc_response_status
    /// (Istio's TCP label set).
    var responseCode: Int?
    var grpcStatus: String
    var responseFlags: String
    var connectionSecurityPolicy: String
    var sourcePrincipal: String?
    var destinationPrincipal: String?

    /// A label value is cut at this many characters (peer-sent values are not trusted).
    static let maxValueLength = 256

    /// Istio's label set, in Istio's order, as the text inside a series key's braces; tag
    /// overrides replace or drop a standard label, or add one after them.
    func labels(tags: [IstioTagResult] = []) -> String {
        let tcp = responseCode == nil
        let source = reporter == .source ? local : peer
        let destination = reporter == .source ? peer : local
        let service = DestinationService(destinationService)
        let standard: [(String, String?)] = [
            ("reporter", reporter.rawValue),
            ("source_workload", source?.workload),
            ("source_canonical_service", source?.canonicalService),
            ("source_canonical_revision", source?.canonicalRevision),
            ("source_workload_namespace", source?.namespace),
            ("source_principal", sourcePrincipal),
            ("source_app", source?.app),
            ("source_version", source?.version),
            ("source_cluster", source?.cluster),
            ("destination_workload", destination?.workload),
            ("destination_workload_namespace", destination?.namespace),
            ("destination_principal", destinationPrincipal),
            ("destination_app", destination?.app),
            ("destination_version", destination?.version),
            ("destination_service", service.host),
            ("destination_canonical_service", destination?.canonicalService),
            ("destination_canonical_revision", destination?.canonicalRevision),
            ("destination_service_name", service.name),
            ("destination_service_namespace", service.namespace),
            ("destination_cluster", destination?.cluster),
            ("request_protocol", requestProtocol),
            ("response_code", responseCode.map(String.init)),
            ("grpc_response_status", grpcStatus),
            ("response_flags", responseFlags),
            ("connection_security_policy", connectionSecurityPolicy),
        ]
        var pairs = standard.filter { !tcp || ($0.0 != "response_code" && $0.0 != "grpc_response_status") }
            .map { ($0.0, Self.bounded($0.1, emptyAllowed: $0.0 == "grpc_response_status")) }
        for tag in tags {
            switch tag {
            case .removed(let name):
                pairs.removeAll { $0.0 == name }
            case .set(let name, let value):
                let bounded = Self.bounded(value, emptyAllowed: true)
                if let i = pairs.firstIndex(where: { $0.0 == name }) { pairs[i].1 = bounded } else { pairs.append((name, bounded)) }
            }
        }
        var out = ""
        for (i, (key, value)) in pairs.enumerated() {
            if i > 0 { out += "," }
            out += key
            out += "=\""
            out += PrometheusText.escape(value)
            out += "\""
        }
        return out
    }

    /// Istio's "unknown" for a missing value; long values cut.
    static func bounded(_ value: String?, emptyAllowed: Bool = false) -> String {
        guard let value, !value.isEmpty || emptyAllowed else { return "unknown" }
        return value.count > maxValueLength ? String(value.prefix(maxValueLength)) : value
    }
}

/// Istio's series keys for one set of label facts.
struct IstioSeriesKeys: Sendable {
    let requests: String
    let duration: String
    let requestBytes: String
    let responseBytes: String
    let requestMessages: String
    let responseMessages: String

    init(labels: String) {
        requests = "istio_requests_total{\(labels)}"
        duration = "istio_request_duration_milliseconds{\(labels)}"
        requestBytes = "istio_request_bytes{\(labels)}"
        responseBytes = "istio_response_bytes{\(labels)}"
        requestMessages = "istio_request_messages_total{\(labels)}"
        responseMessages = "istio_response_messages_total{\(labels)}"
    }
}

/// What a Telemetry tag override did to one label of one request.
enum IstioTagResult: Hashable, Sendable {
    case set(name: String, value: String)
    case removed(String)

    /// The override's tags for this request, in the override's (name) order.
    static func evaluate(_ override: CompiledMetricOverrides.Override, _ attributes: StreamAttributes) -> [IstioTagResult] {
        override.tags.map { tag in
            switch tag.operation {
            case .remove: .removed(tag.name)
            case .upsert(let expression): .set(name: tag.name, value: attributes.labelValue(expression))
            }
        }
    }
}

/// Series keys by label facts: requests with the same facts (the usual case: one peer, one
/// status) share them, so the label text (25 escaped, bounded values) is built once rather
/// than per request, where it cost about 7 % of a sidecar's CPU in the mesh benchmark.
/// Shared by every loop of a filter config; bounded: emptied when full. A tag override's
/// results are part of the key: the same facts with another `x_user` are another series.
final class IstioSeriesCache: Sendable {
    private struct LabelSet: Hashable {
        var facts: IstioRequestFacts
        var tags: [IstioTagResult]
    }

    private let byLabels = NIOLockedValueBox<[LabelSet: IstioSeriesKeys]>([:])
    static let maxEntries = 1024

    func keys(for facts: IstioRequestFacts, tags: [IstioTagResult] = []) -> IstioSeriesKeys {
        let set = LabelSet(facts: facts, tags: tags)
        if let known = byLabels.withLockedValue({ $0[set] }) { return known }
        let keys = IstioSeriesKeys(labels: facts.labels(tags: tags))
        byLabels.withLockedValue { cache in
            if cache.count >= Self.maxEntries { cache.removeAll(keepingCapacity: true) }
            cache[set] = keys
        }
        return keys
    }
}

/// A destination service host and the name and namespace in it (`NAME.NAMESPACE.svc.…`).
struct DestinationService: Equatable {
    var host: String
    var name: String
    var namespace: String

    init(_ host: String) {
        self.host = host
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count >= 3, parts[2] == "svc" {
            name = String(parts[0])
            namespace = String(parts[1])
        } else {
            name = host
            namespace = "unknown"
        }
    }

    /// The service host an outbound cluster (`outbound|PORT|SUBSET|HOST`) sends to; nil for
    /// other clusters.
    static func host(ofCluster cluster: String?) -> String? {
        guard let cluster, cluster.hasPrefix("outbound|") else { return nil }
        let parts = cluster.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4, !parts[3].isEmpty else { return nil }
        return String(parts[3])
    }

    /// The service an inbound request was sent to, from its authority: the host without its
    /// port, a short name completed with `namespace` to `NAME.NAMESPACE.svc.cluster.local`
    /// (and `NAME.NS.svc` with `.cluster.local`; `a.b` is left as it is: it may be a domain);
    /// nil for an IP address or a value that is not a host name (keeps cardinality bounded).
    static func host(ofAuthority authority: String, namespace: String) -> String? {
        var host = Substring(authority.lowercased())
        if let colon = host.lastIndex(of: ":"), !host.hasPrefix("[") { host = host[..<colon] }
        guard !host.isEmpty, host.count <= 253,
              host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }),
              host.contains(where: { $0.isLetter }) else { return nil }
        let parts = host.split(separator: ".")
        switch parts.count {
        case 1: return "\(host).\(namespace).svc.cluster.local"
        case 3 where parts[2] == "svc": return "\(host).cluster.local"
        default: return String(host)
        }
    }
}
