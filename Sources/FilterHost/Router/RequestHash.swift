import MeshAPI
import NIOHTTP1
import Transport

/// A request's consistent-hash key (Envoy's route hash policy, one key): xxHash64 of a
/// header's value, a cookie, the downstream IP or a query parameter. A missing key gives
/// no hash (the pools then pick at random), except a cookie with a ttl: one is generated
/// from the client's address, hashed, and handed back for Set-Cookie.
struct RequestHash: Equatable {
    var hash: UInt64?
    /// A `set-cookie` value for the response, when a cookie was generated.
    var setCookie: String?

    init(hash: UInt64?, setCookie: String? = nil) {
        self.hash = hash
        self.setCookie = setCookie
    }

    init(_ config: ConsistentHashConfig, head: RequestHead, remoteAddress: String?, remoteIP: String?) {
        if let name = config.header {
            let values = head.headers[name]
            self.init(hash: values.isEmpty ? nil : XXHash64.hash(values.joined(separator: ",")))
        } else if let cookie = config.cookie {
            if let value = Self.cookie(cookie.name, in: head.headers) {
                self.init(hash: XXHash64.hash(value))
            } else if let ttl = cookie.ttlMs, let remoteAddress {
                let value = String(XXHash64.hash(remoteAddress), radix: 16)
                self.init(hash: XXHash64.hash(value), setCookie: Self.setCookie(cookie, value: value, ttlMs: ttl))
            } else {
                self.init(hash: nil)
            }
        } else if config.sourceIp == true {
            self.init(hash: remoteIP.map { XXHash64.hash($0) })
        } else if let name = config.queryParameter {
            let query = head.path.firstIndex(of: "?").map { head.path[head.path.index(after: $0)...] }
            self.init(hash: query.flatMap { QueryString($0).first(name) }.map { XXHash64.hash($0) })
        } else {
            self.init(hash: nil)
        }
    }

    /// The first cookie named `name` (surrounding quotes removed).
    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        for header in headers["cookie"] {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard kv.count == 2, kv[0].trimmingSpaces == name else { continue }
                var value = kv[1].trimmingSpaces
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                return value
            }
        }
        return nil
    }

    /// As Envoy writes it: quoted value, Max-Age in seconds when the ttl is positive, Path, HttpOnly.
    static func setCookie(_ c: ConsistentHashConfig.Cookie, value: String, ttlMs: Int) -> String {
        var out = "\(c.name)=\"\(value)\""
        if ttlMs > 0 { out += "; Max-Age=\(ttlMs / 1000)" }
        if let path = c.path, !path.isEmpty { out += "; Path=\(path)" }
        return out + "; HttpOnly"
    }
}

private extension Substring {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
