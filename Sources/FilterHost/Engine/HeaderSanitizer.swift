import Foundation
import NIOCore
import NIOHTTP1

/// The proxy's standard header handling, done once per stream before the filters run.
enum HeaderSanitizer {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy.
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
        "proxy-authenticate", "proxy-authorization",
    ]

    static func prepareRequest(_ head: inout RequestHead, connection: ConnectionInfo) {
        let keepTE = head.headers[canonicalForm: "te"].contains { $0.lowercased() == "trailers" }
        let upgrade = isUpgradeRequest(head.headers) ? head.headers.first(name: "upgrade") : nil
        removeHopByHop(&head.headers)
        if keepTE { head.headers.add(name: "te", value: "trailers") }
        if let upgrade {
            // Upgrades (WebSocket) are tunnelled: the upstream must see the request as sent.
            head.headers.add(name: "connection", value: "upgrade")
            head.headers.add(name: "upgrade", value: upgrade)
        }
        if let ip = connection.remoteAddress?.ipAddress {
            if let xff = head.headers.first(name: "x-forwarded-for") {
                head.headers.replaceOrAdd(name: "x-forwarded-for", value: xff + "," + ip)
            } else {
                head.headers.add(name: "x-forwarded-for", value: ip)
            }
        }
        head.headers.replaceOrAdd(name: "x-forwarded-proto", value: connection.isTLS ? "https" : "http")
        if !head.headers.contains(name: "x-request-id") {
            head.headers.add(name: "x-request-id", value: UUID().uuidString.lowercased())
        }
    }

    static func prepareResponse(_ head: inout ResponseHead) {
        let upgrade = head.status == 101 ? head.headers.first(name: "upgrade") : nil
        removeHopByHop(&head.headers)
        if let upgrade { head.headers.add(name: "upgrade", value: upgrade) }
    }

    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        // Headers named by Connection are hop-by-hop too.
        for value in headers[canonicalForm: "connection"] {
            let name = value.trimmingCharacters(in: .whitespaces).lowercased()
            if !name.isEmpty, name != "close", name != "keep-alive" { headers.remove(name: String(name)) }
        }
        for name in hopByHop where headers.contains(name: name) { headers.remove(name: name) }
    }
}
