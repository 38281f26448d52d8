import FilterHost
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore
import Transport

/// The facts of one request that policies look at, read from the headers, the connection
/// (peer certificate, addresses, SNI) and the JWT filter's metadata. A TCP connection has no
/// head: its HTTP attributes have no values.
struct RBACRequest {
    let head: RequestHead?
    let connection: ConnectionInfo
    /// Verified JWT payloads by issuer (the jwt_authn filter's dynamic metadata).
    let payloads: [JSONValue]
    let destinationPort: Int?
    let remoteFromForwardedFor: Bool

    init(head: RequestHead?, connection: ConnectionInfo, metadata: [String: JSONValue]?, destinationPort: Int?,
         remoteFromForwardedFor: Bool = false) {
        self.head = head
        self.connection = connection
        self.payloads = (metadata ?? [:]).keys.sorted().compactMap { metadata?[$0] }
        self.destinationPort = destinationPort
        self.remoteFromForwardedFor = remoteFromForwardedFor
    }

    /// Istio's principal of the peer, `<trust-domain>/ns/<ns>/sa/<sa>`: nil unless the peer
    /// presented a SPIFFE certificate the listener verified.
    var principal: String? { connection.peerPrincipal }

    /// The namespace in the principal, as Istio's `namespaces` reads it.
    var namespace: String? { connection.peerNamespace }

    func values(_ attribute: RBACAttribute) -> [String] {
        switch attribute {
        case .principal: return principal.map { [$0] } ?? []
        case .namespace: return namespace.map { [$0] } ?? []
        case .serviceAccount:
            guard let parts = principal?.split(separator: "/", omittingEmptySubsequences: false),
                  let i = parts.firstIndex(of: "ns"), i + 3 < parts.count, parts[i + 2] == "sa" else { return [] }
            return ["\(parts[i + 1])/\(parts[i + 3])"]
        case .requestPrincipal:
            return payloads.compactMap { p in
                guard let iss = p["iss"]?.stringValue, let sub = p["sub"]?.stringValue else { return nil }
                return iss + "/" + sub
            }
        case .audiences: return payloads.flatMap { Self.strings($0["aud"]) }
        case .presenter: return payloads.flatMap { Self.strings($0["azp"]) }
        case .claim(let path):
            return payloads.flatMap { p -> [String] in
                var v: JSONValue? = p
                for part in path { v = v?[part] }
                return Self.strings(v)
            }
        case .sourceIP: return connection.remoteAddress?.ipAddress.map { [$0] } ?? []
        case .remoteIP:
            // The engine has appended the peer to X-Forwarded-For; the entry before it is the
            // client as the previous hop saw it (Envoy without use_remote_address, no trusted
            // hops). A gateway trusts no hop: its remote is the peer.
            let entries = (head?.headers["x-forwarded-for"] ?? []).flatMap { $0.split(separator: ",") }
                .map { $0.trimmed }
            if remoteFromForwardedFor, entries.count >= 2 { return [entries[entries.count - 2]] }
            return values(.sourceIP)
        case .destinationIP: return connection.localAddress?.ipAddress.map { [$0] } ?? []
        case .destinationPort:
            return (destinationPort ?? connection.localAddress?.port).map { [String($0)] } ?? []
        case .sni: return connection.serverName.map { [$0] } ?? []
        case .method: return head.map { [$0.method] } ?? []
        case .path:
            guard let head else { return [] }
            return [String(head.path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])]
        case .host:
            // Matched with and without the port, so `hosts: [example.com]` also covers `example.com:8080`.
            guard let head else { return [] }
            let authority = head.authority.isEmpty ? (head.headers.first(name: "host") ?? "") : head.authority
            return authority.isEmpty ? [] : [authority, Self.hostWithoutPort(authority)]
        case .header(let name):
            let v = head?.headers[name] ?? []
            return v.isEmpty ? [] : [v.joined(separator: ",")]
        }
    }

    /// A claim as Istio matches it: a string, or each string of a list.
    private static func strings(_ v: JSONValue?) -> [String] {
        switch v {
        case .string(let s): return [s]
        case .array(let a): return a.compactMap(\.stringValue)
        default: return []
        }
    }

    static func hostWithoutPort(_ authority: String) -> String {
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return authority }
            return String(authority[...close])
        }
        let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2 ? String(parts[0]) : authority
    }
}
