import MeshAPI
import NIOHTTP1

/// A finished request's attributes as Telemetry expressions name them (`request.headers[…]`,
/// `response.code`, …), for filters that evaluate expressions without an access-log entry
/// (the stats filters' tag overrides).
package struct StreamAttributes {
    let info: StreamInfo
    let requestHeaders: HTTPHeaders?

    package init(_ info: StreamInfo, requestHeaders: HTTPHeaders?) {
        self.info = info
        self.requestHeaders = requestHeaders
    }

    package func value(_ a: TelemetryExpression.Attribute) -> TelemetryExpression.Value? {
        switch a {
        case .responseCode: return .int(info.responseCode ?? 0)
        case .requestHeader(let name): return header(name).map { .string($0) }
        case .requestMethod: return header(":method").map { .string($0) }
        case .requestPath: return header(":path").map { .string($0) }
        case .requestURLPath: return header(":path").map { .string(String($0.prefix { $0 != "?" })) }
        case .requestHost: return header(":authority").map { .string($0) }
        case .requestProtocol: return .string(info.protocolVersion.rawValue)
        case .requestID: return header("x-request-id").map { .string($0) }
        case .connectionMTLS: return .bool(info.connection?.tls?.peerCertificateValidated ?? false)
        case .upstreamCluster: return info.clusterName.map { .string($0) }
        }
    }

    func header(_ name: String) -> String? {
        switch name {
        case ":method": return info.method == "-" ? nil : info.method
        case ":path": return info.path == "-" ? nil : info.path
        case ":authority", "host": return info.authority == "-" ? nil : info.authority
        case "x-request-id": return info.requestID ?? requestHeaders?.first(name: name)
        default: return requestHeaders?.first(name: name)
        }
    }

    /// An UPSERT tag's label value: the expression's result as text; `unknown` when it cannot
    /// be evaluated (a missing header), as Istio.
    package func labelValue(_ expression: TelemetryExpression) -> String {
        switch expression.evaluate(value) {
        case .string(let s)?: return s
        case .int(let n)?: return String(n)
        case .bool(let b)?: return b ? "true" : "false"
        case nil: return "unknown"
        }
    }
}
