import MeshAPI
import NIOCore
import Transport

/// Envoy's response flags, as they appear in the access log and metrics.
public enum ResponseFlag: String, Sendable {
    case noHealthyUpstream = "UH"
    case upstreamConnectionFailure = "UF"
    case upstreamOverflow = "UO"
    case upstreamRetryLimitExceeded = "URX"
    case noRouteFound = "NR"
    case noClusterFound = "NC"
    /// The fault filter delayed the request / answered it with an injected abort.
    case delayInjected = "DI"
    case faultInjected = "FI"
    case downstreamConnectionTermination = "DC"
    case upstreamRequestTimeout = "UT"
    case localReset = "LR"
    case upstreamRemoteReset = "UR"
    case upstreamConnectionTermination = "UC"
    case upstreamProtocolError = "UPE"
    case downstreamProtocolError = "DPE"
    case streamIdleTimeout = "SI"
    /// Refused by the overload manager (Envoy's OverloadManager flag).
    case overloadManager = "OM"
    /// Denied by an authorization policy (Envoy's RbacAccessDenied).
    case rbacAccessDenied = "RBAC"
    /// Denied by an external authorizer, or it failed (Envoy's UnauthorizedExternalService).
    case unauthorizedExternalService = "UAEX"
}

/// Facts about one stream, filled in as it progresses; read by the access log and metrics.
public struct StreamInfo {
    public var startTime: NIODeadline = .now()
    public var startWallTime: Double = 0
    public var protocolVersion: HTTPProtocolVersion = .http11
    public var method: String = "-"
    public var path: String = "-"
    public var authority: String = "-"
    public var userAgent: String?
    public var requestID: String?
    public var forwardedFor: String?
    /// The downstream connection (addresses, SNI) for the access log.
    public var connection: ConnectionInfo?
    public var routeName: String?
    public var clusterName: String?
    public var upstreamHost: String?
    public var responseCode: Int?
    public var responseFlags: [ResponseFlag] = []
    public var bytesReceived: Int = 0
    public var bytesSent: Int = 0
    public var upstreamServiceTime: Int64?
    /// Why the upstream connection failed (the access log's `UPSTREAM_TRANSPORT_FAILURE_REASON`);
    /// kept out of the client's answer, which has Envoy's short text only.
    public var upstreamTransportFailureReason: String?
    /// Envoy's dynamic metadata: namespace → key → value (a Lua plugin's strings, numbers,
    /// booleans and tables keep their types).
    public var dynamicMetadata: [String: [String: JSONValue]] = [:]
    /// Envoy's filter state: named objects a filter shares with the filters after it (a
    /// string, number, boolean, or an object whose fields can be read one by one).
    public var filterState: [String: JSONValue] = [:]
    /// This hop's place in the trace; nil when the proxy does no tracing.
    public var trace: TraceContext?
    /// Tags filters add to this hop's span (Lua `handle:span():setTag`).
    public var spanTags: [String: String] = [:]

    public init() {}

    public mutating func addFlag(_ flag: ResponseFlag) {
        if !responseFlags.contains(flag) { responseFlags.append(flag) }
    }

    public var flagsString: String {
        responseFlags.isEmpty ? "-" : responseFlags.map(\.rawValue).joined(separator: ",")
    }
}
