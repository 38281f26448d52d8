#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1
import Transport

/// One stream's access-log fields, Envoy's command operators as Istio's default format
/// uses them (`EnvoyTextLogFormat` / its JSON twin). nil renders `-` in text, null in JSON.
struct AccessLogEntry {
    var startTime: String
    var method: String
    var path: String
    var protocolName: String
    var responseCode: Int
    var responseFlags: String
    var responseCodeDetails: String?
    /// Why a network filter closed a connection (e.g. `rbac_access_denied_matched_policy[...]`).
    var connectionTerminationDetails: String?
    var upstreamTransportFailureReason: String?
    var bytesReceived: Int
    var bytesSent: Int
    var durationMs: Int64
    var upstreamServiceTime: Int64?
    var forwardedFor: String?
    var userAgent: String?
    var requestID: String?
    var authority: String
    var upstreamHost: String?
    var upstreamCluster: String?
    var downstreamLocalAddress: String?
    var downstreamRemoteAddress: String?
    var requestedServerName: String?
    var routeName: String?
    /// The request's headers, for `%REQ(…)%` and filter expressions (nil for TCP).
    var requestHeaders: HTTPHeaders?
    /// The downstream connection is mutual TLS (the peer presented a verified certificate).
    var mtls = false

    init(_ i: StreamInfo, requestHeaders: HTTPHeaders? = nil) {
        self.requestHeaders = requestHeaders
        mtls = i.connection?.tls?.peerCertificateValidated ?? false
        startTime = Self.timestamp(i.startWallTime)
        method = i.method
        path = i.path
        protocolName = i.protocolVersion.rawValue
        responseCode = i.responseCode ?? 0
        responseFlags = i.flagsString
        // Envoy says where the response came from; meshd knows only "the upstream answered".
        responseCodeDetails = i.upstreamServiceTime == nil ? nil : "via_upstream"
        upstreamTransportFailureReason = i.upstreamTransportFailureReason
        bytesReceived = i.bytesReceived
        bytesSent = i.bytesSent
        durationMs = (NIODeadline.now() - i.startTime).nanoseconds / 1_000_000
        upstreamServiceTime = i.upstreamServiceTime
        forwardedFor = i.forwardedFor
        userAgent = i.userAgent
        requestID = i.requestID
        authority = i.authority
        upstreamHost = i.upstreamHost
        upstreamCluster = i.clusterName
        downstreamLocalAddress = Self.hostPort(i.connection?.localAddress)
        downstreamRemoteAddress = Self.hostPort(i.connection?.remoteAddress)
        requestedServerName = i.connection?.serverName
        routeName = i.routeName
    }

    /// `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
    /// %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
    /// "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    /// %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
    /// "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
    /// %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
    /// %REQUESTED_SERVER_NAME% %ROUTE_NAME%`
    var text: String {
        func d(_ s: String?) -> String { s ?? "-" }
        return "[\(startTime)] \"\(method) \(path) \(protocolName)\" \(responseCode) \(responseFlags) "
            + "\(d(responseCodeDetails)) \(d(connectionTerminationDetails)) \"\(d(upstreamTransportFailureReason))\" \(bytesReceived) \(bytesSent) \(durationMs) "
            + "\(d(upstreamServiceTime.map(String.init))) \"\(d(forwardedFor))\" \"\(d(userAgent))\" "
            + "\"\(d(requestID))\" \"\(authority)\" \"\(d(upstreamHost))\" \(d(upstreamCluster)) - "
            + "\(d(downstreamLocalAddress)) \(d(downstreamRemoteAddress)) \(d(requestedServerName)) \(d(routeName))\n"
    }

    /// Istio's JSON keys, one object per line; numbers stay numbers.
    var json: String {
        var out = "{"
        func str(_ key: String, _ v: String?) {
            if out.utf8.count > 1 { out += "," }
            out += "\"\(key)\":" + (v.map(Self.quoted) ?? "null")
        }
        func num<N: BinaryInteger>(_ key: String, _ v: N?) {
            if out.utf8.count > 1 { out += "," }
            out += "\"\(key)\":" + (v.map { String($0) } ?? "null")
        }
        str("start_time", startTime)
        str("method", method)
        str("path", path)
        str("protocol", protocolName)
        num("response_code", responseCode)
        str("response_flags", responseFlags)
        str("response_code_details", responseCodeDetails)
        str("connection_termination_details", connectionTerminationDetails)
        str("upstream_transport_failure_reason", upstreamTransportFailureReason)
        num("bytes_received", bytesReceived)
        num("bytes_sent", bytesSent)
        num("duration", durationMs)
        num("upstream_service_time", upstreamServiceTime)
        str("x_forwarded_for", forwardedFor)
        str("user_agent", userAgent)
        str("request_id", requestID)
        str("authority", authority)
        str("upstream_host", upstreamHost)
        str("upstream_cluster", upstreamCluster)
        str("upstream_local_address", nil)
        str("downstream_local_address", downstreamLocalAddress)
        str("downstream_remote_address", downstreamRemoteAddress)
        str("requested_server_name", requestedServerName)
        str("route_name", routeName)
        return out + "}\n"
    }

    static func quoted(_ s: String) -> String { JSONText.quoted(s) }

    static func hostPort(_ a: SocketAddress?) -> String? {
        guard let a, let ip = a.ipAddress, let port = a.port else { return nil }
        return a.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    static func timestamp(_ t: Double) -> String {
        var seconds = time_t(t)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        let ms = Int((t - Double(Int(t))) * 1000)
        // Digits by hand: String(format:) (Foundation's formatter) was 4–5 % of a sidecar's
        // CPU with the access log on.
        var out = ""
        out.reserveCapacity(24)
        func digits(_ value: Int, _ width: Int, then separator: String) {
            let text = String(value)
            for _ in text.utf8.count..<max(width, text.utf8.count) { out += "0" }
            out += text
            out += separator
        }
        digits(Int(tm.tm_year) + 1900, 4, then: "-")
        digits(Int(tm.tm_mon) + 1, 2, then: "-")
        digits(Int(tm.tm_mday), 2, then: "T")
        digits(Int(tm.tm_hour), 2, then: ":")
        digits(Int(tm.tm_min), 2, then: ":")
        digits(Int(tm.tm_sec), 2, then: ".")
        digits(ms, 3, then: "Z")
        return out
    }
}
