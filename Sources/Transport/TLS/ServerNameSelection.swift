import COpenSSL

/// Envoy's filter-chain match on `server_names`: for "a.b.example.com" the exact name wins,
/// then "*.b.example.com", then "*.example.com", then "*.com", then an entry without names
/// (which also takes a connection without SNI). The first entry claiming a name keeps it.
package struct ServerNameTable<Value> {
    private var exact: [String: Value] = [:]
    /// By suffix with its leading dot: "*.example.com" is ".example.com".
    private var wildcard: [String: Value] = [:]
    private var any: Value?

    package init(_ entries: [(names: [String], value: Value)]) {
        for (names, value) in entries {
            if names.isEmpty {
                if any == nil { any = value }
                continue
            }
            for name in names.map({ $0.lowercased() }) {
                if name == "*" {
                    if any == nil { any = value }
                } else if name.hasPrefix("*.") {
                    if wildcard[String(name.dropFirst())] == nil { wildcard[String(name.dropFirst())] = value }
                } else if exact[name] == nil {
                    exact[name] = value
                }
            }
        }
    }

    package func lookup(_ serverName: String?) -> Value? {
        guard let name = serverName?.lowercased(), !name.isEmpty else { return any }
        if let hit = exact[name] { return hit }
        var rest = Substring(name)
        while let dot = rest.firstIndex(of: ".") {
            let suffix = rest[dot...]
            if let hit = wildcard[String(suffix)] { return hit }
            rest = suffix.dropFirst()
        }
        return any
    }
}

/// Switches a connection to the SNI entry's context in OpenSSL's ClientHello callback, the
/// one point before the version and cipher are chosen, so each entry's range, ciphers and
/// client verification apply (an SSL copies those from its context only when it is made).
/// Reached from C through the callback's `arg`; its owning context keeps it alive.
package final class ServerNameSelector {
    let table: ServerNameTable<TLSServerContext>
    /// Every entry by its SSL_CTX, to find the one a connection ended up with.
    private let byContext: [OpaquePointer: TLSServerContext]

    init(_ table: ServerNameTable<TLSServerContext>, contexts: [TLSServerContext]) {
        self.table = table
        var byContext: [OpaquePointer: TLSServerContext] = [:]
        for c in contexts { byContext[c.ctx] = c }
        self.byContext = byContext
    }

    func context(for ctx: OpaquePointer) -> TLSServerContext? { byContext[ctx] }

    /// `self` must outlive `ctx`.
    func install(on ctx: OpaquePointer) {
        let arg = Unmanaged.passUnretained(self).toOpaque()
        SSL_CTX_set_client_hello_cb(ctx, { ssl, alert, arg in
            guard let ssl, let arg else { return 0 }  // SSL_CLIENT_HELLO_ERROR
            let selector = Unmanaged<ServerNameSelector>.fromOpaque(arg).takeUnretainedValue()
            guard let entry = selector.table.lookup(ServerNameSelector.serverName(ssl)),
                  SSL_set_SSL_CTX(ssl, entry.ctx) != nil else {
                alert?.pointee = 112  // unrecognized_name
                return 0
            }
            SSL_set_verify(ssl, entry.verifyMode, nil)
            // The CertificateRequest's CA names were copied from the front context (none).
            if entry.verifyMode != SSL_VERIFY_NONE, let names = SSL_CTX_get_client_CA_list(entry.ctx) {
                SSL_set_client_CA_list(ssl, SSL_dup_CA_list(names))
            }
            _ = meshd_SSL_set_min_proto_version(ssl, entry.versionRange.min)
            _ = meshd_SSL_set_max_proto_version(ssl, entry.versionRange.max)
            if let ciphers = entry.cipherList { _ = SSL_set_cipher_list(ssl, ciphers) }
            return 1  // SSL_CLIENT_HELLO_SUCCESS
        }, arg)
    }

    /// The host_name of the ClientHello's server_name extension, if any.
    static func serverName(_ ssl: OpaquePointer) -> String? {
        var data: UnsafePointer<UInt8>?
        var length = 0
        guard SSL_client_hello_get0_ext(ssl, 0, &data, &length) == 1, let data else { return nil }
        guard case .hostName(let name) = ServerNameExtension.parse(ArraySlice(UnsafeBufferPointer(start: data, count: length))) else {
            return nil
        }
        return name
    }
}

/// The body of a ClientHello's server_name extension (RFC 6066 §3): a list of typed names,
/// of which the host_name one counts. Shared by the SNI selection here and the TCP proxy's
/// ClientHello reader.
package enum ServerNameExtension {
    package enum Parsed: Equatable {
        /// The host name (lowercased), or nil when the list has none or it is not a DNS name.
        case hostName(String?)
        case malformed
    }

    package static func parse(_ body: ArraySlice<UInt8>) -> Parsed {
        guard body.count >= 2 else { return .malformed }
        let listLength = Int(body[body.startIndex]) << 8 | Int(body[body.startIndex + 1])
        guard body.count >= 2 + listLength else { return .malformed }
        var list = body.dropFirst(2).prefix(listLength)
        while !list.isEmpty {
            guard list.count >= 3 else { return .malformed }
            let type = list[list.startIndex]
            let length = Int(list[list.startIndex + 1]) << 8 | Int(list[list.startIndex + 2])
            guard list.count >= 3 + length else { return .malformed }
            let name = list.dropFirst(3).prefix(length)
            if type == 0 { return .hostName(hostName(name)) }
            list = list.dropFirst(3 + length)
        }
        return .hostName(nil)
    }

    /// A DNS name as SNI allows it (RFC 6066: ASCII, no trailing dot), lowercased; else nil.
    static func hostName(_ bytes: ArraySlice<UInt8>) -> String? {
        guard !bytes.isEmpty, bytes.count <= 255 else { return nil }
        for b in bytes {
            let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x5F
            if !ok { return nil }
        }
        return String(decoding: bytes, as: UTF8.self).lowercased()
    }
}
