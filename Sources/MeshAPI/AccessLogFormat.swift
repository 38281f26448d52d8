/// An Envoy access-log format string (`%START_TIME% "%REQ(:METHOD)%" …`) parsed into literal
/// text and command operators. Parsed by the control plane (to refuse a bad format at its
/// line) and by the proxy (to render lines). Operators are the ones Istio's default format
/// uses; any other is refused.
public struct AccessLogFormat: Sendable, Equatable {
    public enum Operator: Sendable, Equatable {
        case startTime
        /// `REQ(X?Y):Z`: header X, else Y, truncated to Z characters. Pseudo-headers `:METHOD`,
        /// `:PATH`, `:AUTHORITY` name the request line.
        case requestHeader(String, fallback: String?, maxLength: Int?)
        case upstreamServiceTime
        case protocolName, responseCode, responseFlags, responseCodeDetails, connectionTerminationDetails
        case upstreamTransportFailureReason, bytesReceived, bytesSent, duration
        case upstreamHost, upstreamCluster, upstreamLocalAddress, downstreamLocalAddress, downstreamRemoteAddress
        case requestedServerName, routeName

        /// Rendered as a JSON number (not a string) when it is a label's whole value.
        public var isNumeric: Bool {
            switch self {
            case .responseCode, .bytesReceived, .bytesSent, .duration, .upstreamServiceTime: true
            default: false
            }
        }
    }

    public enum Segment: Sendable, Equatable {
        case text(String)
        case command(Operator)
    }

    public var segments: [Segment]

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    static let simple: [String: Operator] = [
        "START_TIME": .startTime, "PROTOCOL": .protocolName, "RESPONSE_CODE": .responseCode,
        "RESPONSE_FLAGS": .responseFlags, "RESPONSE_CODE_DETAILS": .responseCodeDetails,
        "CONNECTION_TERMINATION_DETAILS": .connectionTerminationDetails,
        "UPSTREAM_TRANSPORT_FAILURE_REASON": .upstreamTransportFailureReason, "BYTES_RECEIVED": .bytesReceived,
        "BYTES_SENT": .bytesSent, "DURATION": .duration, "UPSTREAM_HOST": .upstreamHost,
        "UPSTREAM_CLUSTER": .upstreamCluster, "UPSTREAM_CLUSTER_RAW": .upstreamCluster,
        "UPSTREAM_LOCAL_ADDRESS": .upstreamLocalAddress, "DOWNSTREAM_LOCAL_ADDRESS": .downstreamLocalAddress,
        "DOWNSTREAM_REMOTE_ADDRESS": .downstreamRemoteAddress, "REQUESTED_SERVER_NAME": .requestedServerName,
        "ROUTE_NAME": .routeName,
    ]

    public init(parsing format: String) throws {
        var segments: [Segment] = []
        var literal = ""
        var rest = Substring(format)
        while let percent = rest.firstIndex(of: "%") {
            literal += rest[..<percent]
            let after = rest[rest.index(after: percent)...]
            // `%%` is a literal percent sign.
            if after.first == "%" {
                literal += "%"
                rest = after.dropFirst()
                continue
            }
            guard let end = after.firstIndex(of: "%") else {
                throw ParseError(reason: "unterminated command operator at \"%\(after.prefix(30))\"")
            }
            if !literal.isEmpty { segments.append(.text(literal)) }
            literal = ""
            segments.append(.command(try Self.command(String(after[..<end]))))
            rest = after[after.index(after: end)...]
        }
        literal += rest
        if !literal.isEmpty { segments.append(.text(literal)) }
        self.segments = segments
    }

    static func command(_ body: String) throws -> Operator {
        if let op = simple[body] { return op }
        for (prefix, isRequest) in [("REQ(", true), ("RESP(", false)] where body.hasPrefix(prefix) {
            guard let close = body.lastIndex(of: ")") else { throw ParseError(reason: "%\(body)%: missing ')'") }
            let inner = body[body.index(body.startIndex, offsetBy: prefix.count)..<close]
            let tail = body[body.index(after: close)...]
            var maxLength: Int?
            if !tail.isEmpty {
                guard tail.first == ":", let n = Int(tail.dropFirst()), n > 0 else {
                    throw ParseError(reason: "%\(body)%: a length after ')' is ':' and a positive number")
                }
                maxLength = n
            }
            let names = inner.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).map {
                $0.lowercased()
            }
            guard let first = names.first, !first.isEmpty, names.allSatisfy({ !$0.isEmpty }) else {
                throw ParseError(reason: "%\(body)%: a header name is required")
            }
            if isRequest { return .requestHeader(first, fallback: names.count > 1 ? names[1] : nil, maxLength: maxLength) }
            // meshd keeps no response headers for logging: only the one Istio's format uses.
            guard names == ["x-envoy-upstream-service-time"], maxLength == nil else {
                throw ParseError(reason: "%\(body)%: only %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% is supported")
            }
            return .upstreamServiceTime
        }
        throw ParseError(reason: "unknown or unsupported command operator %\(body)%")
    }
}
