/// Gateway rules: servers with a port and hosts; TLS where the protocol needs it.
enum GatewayRules {
    static func check(_ gw: Gateway, _ c: inout Issues) {
        if gw.servers.isEmpty { c.add("spec.servers", "at least one server is required") }
        var protocols: [Int: String] = [:]
        for (i, s) in gw.servers.enumerated() {
            let p = "spec.servers[\(i)]"
            var proto = ""
            if let port = s.port {
                CommonRules.port(port.number, p + ".port.number", &c, required: true)
                if let declared = port.protocol {
                    proto = declared.uppercased()
                    if !PortProtocol.names.contains(proto) {
                        c.add(p + ".port.protocol", "unknown protocol \"\(declared)\" (one of \(PortProtocol.names.joined(separator: ", ")))")
                    }
                } else {
                    c.add(p + ".port.protocol", "protocol is required")
                }
                if let n = port.number, !proto.isEmpty {
                    if let other = protocols[n], other != proto {
                        c.add(p + ".port", "port \(n) is already used with protocol \(other)")
                    }
                    protocols[n] = proto
                }
            } else {
                c.add(p + ".port", "port is required")
            }
            if s.hosts.isEmpty { c.add(p + ".hosts", "at least one host is required") }
            for (j, h) in s.hosts.enumerated() { host(h, "\(p).hosts[\(j)]", &c) }
            tls(s.tls, protocol: proto, p, &c)
        }
    }

    /// `host` or `namespace/host`, the namespace being a name, `*`, `.` or `~`.
    static func host(_ h: String, _ path: String, _ c: inout Issues) {
        let parts = h.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 {
            let ns = parts[0]
            if ns != "*" && ns != "." && ns != "~" && !CommonRules.isNamespaceName(ns) {
                c.add(path, "\"\(ns)\" in \"\(h)\" is not a namespace, \"*\", \".\" or \"~\"")
            }
            CommonRules.host(parts[1], path, &c)
        } else {
            CommonRules.host(h, path, &c)
        }
    }

    static func tls(_ tls: ServerTLSSettings?, protocol proto: String, _ p: String, _ c: inout Issues) {
        let needsTLS = proto == "HTTPS" || proto == "TLS"
        guard let tls else {
            if needsTLS { c.add(p + ".tls", "\(proto) servers need tls settings") }
            return
        }
        if needsTLS, tls.mode == nil { c.add(p + ".tls.mode", "mode is required for \(proto) servers") }
        guard tls.mode == "SIMPLE" || tls.mode == "MUTUAL" || tls.mode == "OPTIONAL_MUTUAL" else { return }
        let hasCredential = tls.credentialName != nil || !tls.credentialNames.isEmpty || !tls.tlsCertificates.isEmpty
        if !hasCredential {
            if tls.serverCertificate == nil { c.add(p + ".tls.serverCertificate", "serverCertificate is required for \(tls.mode!) TLS (or credentialName)") }
            if tls.privateKey == nil { c.add(p + ".tls.privateKey", "privateKey is required for \(tls.mode!) TLS (or credentialName)") }
            if tls.mode != "SIMPLE", tls.caCertificates == nil {
                c.add(p + ".tls.caCertificates", "caCertificates is required for \(tls.mode!) TLS (or credentialName)")
            }
        }
    }
}
