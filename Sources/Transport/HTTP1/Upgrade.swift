import NIOHTTP1

/// Whether a request asks for a protocol upgrade that the proxy tunnels (RFC 9110 §7.8).
/// After the 101 both HTTP/1 connections carry the tunnel's bytes as the stream's body.
package func isUpgradeRequest(_ headers: HTTPHeaders) -> Bool {
    guard headers.contains(name: "upgrade") else { return false }
    return headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
}
