import MeshAPI
import NIOHTTP1

/// Renders an entry with a custom format (`accessLogFormat`, `envoyFileAccessLog.logFormat`)
/// and answers a filter expression's attributes from it.
extension AccessLogEntry {
    /// One line: the format's own text (a format without a final newline gets one, so lines never run together).
    func render(_ format: AccessLogFormat) -> String {
        let out = fill(format)
        return out.hasSuffix("\n") ? out : out + "\n"
    }

    func fill(_ format: AccessLogFormat) -> String {
        var out = ""
        for segment in format.segments {
            switch segment {
            case .text(let t): out += t
            case .command(let op): out += value(op) ?? "-"
            }
        }
        return out
    }

    /// One JSON object with the given keys; a key whose format is one numeric operator is a number.
    func renderJSON(_ labels: [(String, AccessLogFormat)]) -> String {
        var out = "{"
        for (i, (key, format)) in labels.enumerated() {
            if i > 0 { out += "," }
            out += Self.quoted(key) + ":"
            if format.segments.count == 1, case .command(let op) = format.segments[0] {
                if let v = value(op) { out += op.isNumeric ? v : Self.quoted(v) } else { out += "null" }
            } else {
                out += Self.quoted(fill(format))
            }
        }
        return out + "}\n"
    }

    func value(_ op: AccessLogFormat.Operator) -> String? {
        switch op {
        case .startTime: return startTime
        case .requestHeader(let name, let fallback, let maxLength):
            guard let v = header(name) ?? fallback.flatMap(header) else { return nil }
            return maxLength.map { String(v.prefix($0)) } ?? v
        case .upstreamServiceTime: return upstreamServiceTime.map(String.init)
        case .protocolName: return protocolName
        case .responseCode: return String(responseCode)
        case .responseFlags: return responseFlags
        case .responseCodeDetails: return responseCodeDetails
        case .connectionTerminationDetails: return connectionTerminationDetails
        case .upstreamTransportFailureReason, .upstreamLocalAddress: return nil
        case .bytesReceived: return String(bytesReceived)
        case .bytesSent: return String(bytesSent)
        case .duration: return String(durationMs)
        case .upstreamHost: return upstreamHost
        case .upstreamCluster: return upstreamCluster
        case .downstreamLocalAddress: return downstreamLocalAddress
        case .downstreamRemoteAddress: return downstreamRemoteAddress
        case .requestedServerName: return requestedServerName
        case .routeName: return routeName
        }
    }

    /// A request header by lower-case name; `:method`, `:path`, `:authority` name the request line.
    func header(_ name: String) -> String? {
        switch name {
        case ":method": return method == "-" ? nil : method
        case ":path": return path == "-" ? nil : path
        case ":authority", "host": return authority == "-" ? nil : authority
        case "x-request-id": return requestID ?? requestHeaders?.first(name: name)
        case "user-agent": return userAgent ?? requestHeaders?.first(name: name)
        case "x-forwarded-for": return forwardedFor ?? requestHeaders?.first(name: name)
        default: return requestHeaders?.first(name: name)
        }
    }

    func attribute(_ a: TelemetryExpression.Attribute) -> TelemetryExpression.Value? {
        switch a {
        case .responseCode: return .int(responseCode)
        case .requestHeader(let name): return header(name).map { .string($0) }
        case .requestMethod: return header(":method").map { .string($0) }
        case .requestPath: return header(":path").map { .string($0) }
        case .requestURLPath: return header(":path").map { .string(String($0.prefix { $0 != "?" })) }
        case .requestHost: return header(":authority").map { .string($0) }
        case .requestProtocol: return .string(protocolName)
        case .requestID: return requestID.map { .string($0) }
        case .connectionMTLS: return .bool(mtls)
        case .upstreamCluster: return upstreamCluster.map { .string($0) }
        }
    }

    /// The line `log` wants for this entry, or nil when its filter leaves the entry out.
    func line(for log: CompiledAccessLog, encoding: AccessLogEncoding) -> String? {
        if let filter = log.filter, filter.evaluate(attribute) != .bool(true) { return nil }
        switch encoding {
        case .json: return log.labels.map(renderJSON) ?? json
        case .text: return log.format.map(render) ?? text
        }
    }
}
