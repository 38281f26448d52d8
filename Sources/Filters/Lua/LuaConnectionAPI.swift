import CLua
import FilterHost
import Transport
import LuaRuntime

/// connection(), its ssl() (also streamInfo():downstreamSslConnection()) and the parsed
/// subject name: Envoy's SSL connection object over the handshake's facts
/// (`ConnectionInfo.tls`, read by the TLS handler).
package enum LuaConnectionAPI {
    package static var connectionMethods: [(String, LuaHostFn)] {
        [("ssl", { L in LuaObjects.host(L) { L in try LuaConnectionAPI.ssl(L, from: .connection) } })]
    }

    package static var sslMethods: [(String, LuaHostFn)] {
        [
            ("peerCertificatePresented", { L in LuaConnectionAPI.flag(L) { tls in tls?.peerCertificate != nil } }),
            ("peerCertificateValidated", { L in LuaConnectionAPI.flag(L) { tls in tls?.peerCertificateValidated ?? false } }),
            ("uriSanPeerCertificate", { L in LuaConnectionAPI.list(L) { tls in tls?.peerCertificate?.uriSANs } }),
            ("dnsSansPeerCertificate", { L in LuaConnectionAPI.list(L) { tls in tls?.peerCertificate?.dnsSANs } }),
            ("uriSanLocalCertificate", { L in LuaConnectionAPI.list(L) { tls in tls?.localCertificate?.uriSANs } }),
            ("dnsSansLocalCertificate", { L in LuaConnectionAPI.list(L) { tls in tls?.localCertificate?.dnsSANs } }),
            // Certificate extension OIDs are not read: always empty (docs/lua-api.md says so).
            ("oidsPeerCertificate", { L in LuaConnectionAPI.list(L) { _ in nil } }),
            ("oidsLocalCertificate", { L in LuaConnectionAPI.list(L) { _ in nil } }),
            ("sha256PeerCertificateDigest", { L in LuaConnectionAPI.text(L) { tls in tls?.peerCertificate?.sha256Digest } }),
            ("serialNumberPeerCertificate", { L in LuaConnectionAPI.text(L) { tls in tls?.peerCertificate?.serialNumber } }),
            ("issuerPeerCertificate", { L in LuaConnectionAPI.text(L) { tls in tls?.peerCertificate?.issuer } }),
            ("subjectPeerCertificate", { L in LuaConnectionAPI.text(L) { tls in tls?.peerCertificate?.subject } }),
            ("subjectLocalCertificate", { L in LuaConnectionAPI.text(L) { tls in tls?.localCertificate?.subject } }),
            ("urlEncodedPemEncodedPeerCertificate", { L in
                LuaConnectionAPI.text(L) { tls in tls?.peerCertificate.map { LuaConnectionAPI.urlEncoded($0.pem) } }
            }),
            // The chain the client sent is not kept: the leaf alone (docs/lua-api.md says so).
            ("urlEncodedPemEncodedPeerCertificateChain", { L in
                LuaConnectionAPI.text(L) { tls in tls?.peerCertificate.map { LuaConnectionAPI.urlEncoded($0.pem) } }
            }),
            ("validFromPeerCertificate", { L in LuaConnectionAPI.number(L) { tls in tls?.peerCertificate?.validFrom } }),
            ("expirationPeerCertificate", { L in LuaConnectionAPI.number(L) { tls in tls?.peerCertificate?.expiration } }),
            ("sessionId", { L in LuaConnectionAPI.text(L) { tls in tls?.sessionID } }),
            ("ciphersuiteId", { L in
                LuaConnectionAPI.text(L) { tls in
                    let id = tls?.cipherID ?? 0xffff
                    let hex = String(id, radix: 16)
                    return "0x" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                }
            }),
            ("ciphersuiteString", { L in LuaConnectionAPI.text(L) { tls in tls?.cipher } }),
            ("tlsVersion", { L in LuaConnectionAPI.text(L) { tls in tls?.version } }),
            ("parsedSubjectPeerCertificate", { L in
                LuaObjects.host(L) { L in
                    let s = try LuaObjects.scope(L, .ssl)
                    if s.filter.stream.connectionInfo.tls?.peerCertificate == nil { lua_pushnil(L) } else {
                        LuaObjects.push(L, s, .parsedName)
                    }
                    return 1
                }
            }),
            // meshd's own: the negotiated ALPN protocol.
            ("alpn", { L in LuaStreamInfoAPI.info(L, .ssl) { s in s.filter.stream.connectionInfo.alpn ?? "" } }),
        ]
    }

    package static var parsedNameMethods: [(String, LuaHostFn)] {
        [
            ("commonName", { L in
                LuaStreamInfoAPI.info(L, .parsedName) { s in
                    s.filter.stream.connectionInfo.tls?.peerCertificate?.subjectCommonName ?? ""
                }
            }),
            ("organizationName", { L in
                LuaObjects.host(L) { L in
                    let s = try LuaObjects.scope(L, .parsedName)
                    LuaConnectionAPI.push(L, s.filter.stream.connectionInfo.tls?.peerCertificate?.subjectOrganizations ?? [])
                    return 1
                }
            }),
        ]
    }

    /// The SSL object, or nil on plaintext.
    static func ssl(_ L: OpaquePointer, from kind: LuaKind) throws -> Int32 {
        let s = try LuaObjects.scope(L, kind)
        if s.filter.stream.connectionInfo.isTLS { LuaObjects.push(L, s, .ssl) } else { lua_pushnil(L) }
        return 1
    }

    /// Envoy's URL encoding of a PEM: newline, space, '+', '/' and '=' escaped.
    static func urlEncoded(_ pem: String) -> String {
        var out = ""
        for c in pem.unicodeScalars {
            switch c {
            case "\n": out += "%0A"
            case " ": out += "%20"
            case "+": out += "%2B"
            case "/": out += "%2F"
            case "=": out += "%3D"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func facts(_ L: OpaquePointer) throws -> TLSConnectionFacts? {
        try LuaObjects.scope(L, .ssl).filter.stream.connectionInfo.tls
    }

    private static func flag(_ L: OpaquePointer?, _ value: (TLSConnectionFacts?) -> Bool) -> Int32 {
        LuaObjects.host(L) { L in
            lua_pushboolean(L, value(try facts(L)) ? 1 : 0)
            return 1
        }
    }

    private static func text(_ L: OpaquePointer?, _ value: (TLSConnectionFacts?) -> String?) -> Int32 {
        LuaObjects.host(L) { L in
            LuaObjects.push(L, value(try facts(L)) ?? "")
            return 1
        }
    }

    private static func number(_ L: OpaquePointer?, _ value: (TLSConnectionFacts?) -> Int64?) -> Int32 {
        LuaObjects.host(L) { L in
            lua_pushinteger(L, lua_Integer(value(try facts(L)) ?? 0))
            return 1
        }
    }

    private static func list(_ L: OpaquePointer?, _ value: (TLSConnectionFacts?) -> [String]?) -> Int32 {
        LuaObjects.host(L) { L in
            push(L, value(try facts(L)) ?? [])
            return 1
        }
    }

    private static func push(_ L: OpaquePointer, _ items: [String]) {
        lua_createtable(L, Int32(items.count), 0)
        for (i, item) in items.enumerated() {
            LuaObjects.push(L, item)
            lua_rawseti(L, -2, lua_Integer(i + 1))
        }
    }
}
