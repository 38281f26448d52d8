import Transport

/// What the client reads when the router answers an upstream failure itself: Envoy's short
/// bodies (its router's local replies), never the internal error, which names addresses and
/// Swift types. The detail goes to the access log's `UPSTREAM_TRANSPORT_FAILURE_REASON`.
enum UpstreamFailureReply {
    static let resetPrefix = "upstream connect error or disconnect/reset before headers. reset reason: "

    static func body(_ failure: UpstreamFailure) -> String {
        switch failure {
        case .connectFailure: resetPrefix + "connection failure"
        case .reset: resetPrefix + "connection termination"
        case .protocolError: resetPrefix + "protocol error"
        case .overflow: resetPrefix + "overflow"
        case .noHealthyUpstream: "no healthy upstream"
        }
    }

    /// The failure's detail for the access log: one line, no double quotes (the text format
    /// quotes the field), bounded.
    static func transportReason(_ failure: UpstreamFailure) -> String? {
        let detail: String
        switch failure {
        case .connectFailure(let why), .reset(let why), .protocolError(let why): detail = why
        case .overflow, .noHealthyUpstream: return nil
        }
        let line = String(detail.map { $0 == "\"" ? "'" : ($0.isNewline ? " " : $0) })
        return line.count > 256 ? String(line.prefix(256)) : line
    }
}
