import MeshAPI
import NIOCore
import Transport

/// A listener's connection limits with their defaults filled in: what `ConnectionSetup`
/// applies to each new connection. Read from the loop's current snapshot at accept, so a
/// config change reaches the next connection without rebinding the socket.
struct ListenerLimits {
    var timeouts: ConnectionTimeouts
    var maxRequestHeaderBytes: Int
    /// Nil: no cap of the listener's own (the process-wide budget still applies).
    var maxConnections: Int?
    var http2: HTTP2ServerSettings

    static let defaultIdleTimeoutMs = 300_000
    static let defaultRequestHeadersTimeoutMs = 10_000
    static let defaultMaxRequestHeadersKb = 60

    init(_ l: Listener) {
        timeouts = ConnectionTimeouts(idle: .milliseconds(Int64(l.idleTimeoutMs ?? Self.defaultIdleTimeoutMs)),
                                      requestHeaders: .milliseconds(Int64(l.requestHeadersTimeoutMs
                                                                          ?? Self.defaultRequestHeadersTimeoutMs)))
        maxRequestHeaderBytes = (l.maxRequestHeadersKb ?? Self.defaultMaxRequestHeadersKb) * 1024
        maxConnections = l.maxConnections
        var h2 = HTTP2ServerSettings()
        h2.maxHeaderListSize = maxRequestHeaderBytes
        h2.idleTimeout = timeouts.idle
        h2.headerBlockTimeout = timeouts.requestHeaders
        if let n = l.http2MaxResetsPerWindow { h2.maxResetsPerWindow = n }
        if let n = l.http2MaxInboundPriorityFramesPerStream { h2.frameLimits.maxInboundPriorityFramesPerStream = n }
        if let n = l.http2MaxConsecutiveInboundFramesWithEmptyPayload {
            h2.frameLimits.maxConsecutiveInboundFramesWithEmptyPayload = n
        }
        if let n = l.http2MaxInboundWindowUpdateFramesPerDataFrameSent {
            h2.frameLimits.maxInboundWindowUpdateFramesPerDataFrameSent = n
        }
        http2 = h2
    }

    /// Refuses limits that cannot work (a zero timeout would close every connection at once).
    static func validate(_ l: Listener, path: String) throws {
        let positive: [(String, Int?)] = [
            ("idleTimeoutMs", l.idleTimeoutMs), ("requestHeadersTimeoutMs", l.requestHeadersTimeoutMs),
            ("maxRequestHeadersKb", l.maxRequestHeadersKb), ("maxConnections", l.maxConnections),
            ("http2MaxResetsPerWindow", l.http2MaxResetsPerWindow),
            ("http2MaxInboundPriorityFramesPerStream", l.http2MaxInboundPriorityFramesPerStream),
            ("http2MaxInboundWindowUpdateFramesPerDataFrameSent", l.http2MaxInboundWindowUpdateFramesPerDataFrameSent),
        ]
        for (field, value) in positive {
            if let value, value < 1 { throw ConfigError(path: "\(path).\(field)", reason: "must be at least 1, got \(value)") }
        }
        // 0 is meaningful here: no empty frame at all.
        if let value = l.http2MaxConsecutiveInboundFramesWithEmptyPayload, value < 0 {
            throw ConfigError(path: "\(path).http2MaxConsecutiveInboundFramesWithEmptyPayload",
                              reason: "must be at least 0, got \(value)")
        }
    }
}
