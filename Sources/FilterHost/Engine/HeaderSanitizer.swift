#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import Transport

/// The proxy's standard header handling, done once per stream before the filters run.
package enum HeaderSanitizer {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy. `connection` comes first:
    /// `removeHopByHop` reads its tokens by that position.
    package static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
        "proxy-authenticate", "proxy-authorization",
    ]

    package static func prepareRequest(_ head: inout RequestHead, connection: ConnectionInfo, requestIDs: inout RequestIDGenerator) {
        let keepTE = head.headers.contains(name: "te")
            && head.headers[canonicalForm: "te"].contains { $0.lowercased() == "trailers" }
        let upgrade = isUpgradeRequest(head.headers) ? head.headers.first(name: "upgrade") : nil
        removeHopByHop(&head.headers)
        if keepTE { head.headers.add(name: "te", value: "trailers") }
        if let upgrade {
            // Upgrades (WebSocket) are tunnelled: the upstream must see the request as sent.
            head.headers.add(name: "connection", value: "upgrade")
            head.headers.add(name: "upgrade", value: upgrade)
        }
        if let ip = connection.remoteIP {
            if let xff = head.headers.first(name: "x-forwarded-for") {
                head.headers.replaceOrAdd(name: "x-forwarded-for", value: xff + "," + ip)
            } else {
                head.headers.add(name: "x-forwarded-for", value: ip)
            }
        }
        head.headers.replaceOrAdd(name: "x-forwarded-proto", value: connection.isTLS ? "https" : "http")
        if !head.headers.contains(name: "x-request-id") {
            head.headers.add(name: "x-request-id", value: requestIDs.uuidString())
        }
    }

    /// A sidecar's inbound mesh listener, as Istio configures it (Envoy's
    /// `forward_client_cert_details: SANITIZE_SET` with subject, URI and DNS): a client's own
    /// `x-forwarded-client-cert` is dropped, and a verified mTLS peer's certificate is described
    /// to the app: `By=<our SPIFFE ID>;Hash=<SHA-256>;Subject="…";URI=<peer SPIFFE ID>`.
    package static func setClientCertDetails(_ headers: inout HTTPHeaders, connection: ConnectionInfo) {
        headers.remove(name: "x-forwarded-client-cert")
        guard let tls = connection.tls, tls.peerCertificateValidated, let peer = tls.peerCertificate else { return }
        var parts: [String] = []
        if let by = tls.localCertificate?.uriSANs.first { parts.append("By=\(by)") }
        parts.append("Hash=\(peer.sha256Digest)")
        parts.append("Subject=\"\(peer.subject.replacing("\"", with: "\\\""))\"")
        parts += peer.uriSANs.map { "URI=\($0)" } + peer.dnsSANs.map { "DNS=\($0)" }
        headers.add(name: "x-forwarded-client-cert", value: parts.joined(separator: ";"))
    }

    package static func prepareResponse(_ head: inout ResponseHead) {
        let upgrade = head.status == 101 ? head.headers.first(name: "upgrade") : nil
        removeHopByHop(&head.headers)
        if let upgrade { head.headers.add(name: "upgrade", value: upgrade) }
    }

    package static func removeHopByHop(_ headers: inout HTTPHeaders) {
        // One pass over the headers, allocating nothing in the common case (at most a
        // `connection: keep-alive` or `close`): which hop-by-hop names occur is a bit set,
        // and the tokens of `connection` are read in place.
        var present: UInt16 = 0
        var named: [String] = []
        for (name, value) in headers {
            guard let index = hopByHopIndex(name) else { continue }
            present |= 1 << index
            guard index == 0 else { continue }
            // Headers named by Connection are hop-by-hop too.
            var rest = Substring(value)
            while !rest.isEmpty {
                let comma = rest.firstIndex(of: ",") ?? rest.endIndex
                var token = rest[..<comma]
                rest = comma == rest.endIndex ? "" : rest[rest.index(after: comma)...]
                while token.first == " " || token.first == "\t" { token.removeFirst() }
                while token.last == " " || token.last == "\t" { token.removeLast() }
                if !token.isEmpty, !equalsLowercase(token, "close"), !equalsLowercase(token, "keep-alive") {
                    named.append(token.lowercased())
                }
            }
        }
        if present != 0 {
            for (index, name) in hopByHop.enumerated() where present & (1 << index) != 0 { headers.remove(name: name) }
        }
        for name in named { headers.remove(name: name) }
    }

    /// `text` is `lowercase` in any case (ASCII), without making a lowercased copy.
    private static func equalsLowercase(_ text: Substring, _ lowercase: String) -> Bool {
        text.utf8.count == lowercase.utf8.count && zip(lowercase.utf8, text.utf8).allSatisfy { $0 == $1 | 0x20 }
    }

    /// Case-insensitive position in `hopByHop` without allocating or reading the array (a
    /// lazily initialised global): this runs for every header of every request and response.
    private static func hopByHopIndex(_ name: String) -> Int? {
        switch name.utf8.count {
        case 2: return equalsLowercase(name, "te") ? 5 : nil
        case 7: return equalsLowercase(name, "upgrade") ? 4 : equalsLowercase(name, "trailer") ? 6 : nil
        case 10: return equalsLowercase(name, "connection") ? 0 : equalsLowercase(name, "keep-alive") ? 1 : nil
        case 16: return equalsLowercase(name, "proxy-connection") ? 2 : nil
        case 17: return equalsLowercase(name, "transfer-encoding") ? 3 : nil
        case 18: return equalsLowercase(name, "proxy-authenticate") ? 7 : nil
        case 19: return equalsLowercase(name, "proxy-authorization") ? 8 : nil
        default: return nil
        }
    }

    /// `name` is `lowercase` in any case (ASCII; `| 0x20` folds letters, `-` is unchanged).
    private static func equalsLowercase(_ name: String, _ lowercase: StaticString) -> Bool {
        guard name.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        let l = lowercase.utf8Start
        var i = 0
        for b in name.utf8 {
            guard b | 0x20 == l[i] else { return false }
            i += 1
        }
        return true
    }
}
