#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore

/// Checks for the security kinds: what the proxies could not enforce is refused here.
enum SecurityRules {
    static func check(_ s: PeerAuthentication, _ c: inout Issues) {
        if !s.portLevelMtls.isEmpty && s.selector == nil {
            c.add("spec.portLevelMtls", "portLevelMtls requires a selector")
        }
        for key in s.portLevelMtls.keys.sorted() where Int(key).map({ !(1...65535).contains($0) }) ?? true {
            c.add("spec.portLevelMtls.\(key)", "\"\(key)\" is not a port number")
        }
    }

    static func check(_ s: RequestAuthentication, _ c: inout Issues) {
        if s.selector != nil && (!s.targetRefs.isEmpty || s.targetRef != nil) {
            c.add("spec", "only one of selector or targetRefs may be set")
        }
        for (i, rule) in s.jwtRules.enumerated() {
            let p = "spec.jwtRules[\(i)]"
            // Istio's validateJwtRule, message for message.
            if (rule.issuer ?? "").isEmpty && (rule.jwksUri ?? "").isEmpty {
                c.add(p + ".issuer", "issuer or jwksUri must be non-empty string")
            }
            for (j, a) in rule.audiences.enumerated() where a.isEmpty {
                c.add("\(p).audiences[\(j)]", "audience must be non-empty string")
            }
            if let uri = rule.jwksUri, !uri.isEmpty, let reason = jwksURIError(uri) { c.add(p + ".jwksUri", reason) }
            if rule.jwks != nil && rule.jwksUri != nil { c.add(p, "only one of jwks or jwksUri may be set") }
            if let jwks = rule.jwks, let reason = jwksError(jwks) { c.add(p + ".jwks", reason) }
            for (j, h) in rule.fromHeaders.enumerated() where (h.name ?? "").isEmpty {
                c.add("\(p).fromHeaders[\(j)].name", "location header name must be non-empty string")
            }
            for (j, q) in rule.fromParams.enumerated() where q.isEmpty {
                c.add("\(p).fromParams[\(j)]", "location query must be non-empty string")
            }
            for (j, k) in rule.fromCookies.enumerated() where k.isEmpty {
                c.add("\(p).fromCookies[\(j)]", "cookie name must be non-empty string")
            }
            for (j, o) in rule.outputClaimToHeaders.enumerated() {
                let op = "\(p).outputClaimToHeaders[\(j)]"
                if (o.header ?? "").isEmpty || (o.claim ?? "").isEmpty {
                    c.add(op, "outputClaimToHeaders header and claim value must be non-empty string")
                } else if let header = o.header, !isStrictHeaderName(header) {
                    c.add(op + ".header", "header name \(header) is not a valid header name")
                }
            }
        }
    }

    static func check(_ s: AuthorizationPolicy, _ c: inout Issues) {
        if s.selector != nil && (!s.targetRefs.isEmpty || s.targetRef != nil) {
            c.add("spec", "only one of selector or targetRefs may be set")
        }
        if s.action == "CUSTOM" && s.provider == nil { c.add("spec.provider", "a CUSTOM action needs a provider") }
        if s.provider != nil && s.action != "CUSTOM" { c.add("spec.provider", "provider is only allowed with the CUSTOM action") }
        for (i, rule) in s.rules.enumerated() {
            let p = "spec.rules[\(i)]"
            for (j, f) in rule.from.enumerated() {
                for (name, values) in (f.source?.fields ?? [:]).sorted(by: { $0.key < $1.key }) {
                    attributeValues(name.lowercased().hasSuffix("ipblocks") ? .address : .string, values, "\(p).from[\(j)].source.\(name)", &c)
                }
            }
            for (j, t) in rule.to.enumerated() {
                for (name, values) in (t.operation?.fields ?? [:]).sorted(by: { $0.key < $1.key }) {
                    attributeValues(name.lowercased().hasSuffix("ports") ? .port : .string, values, "\(p).to[\(j)].operation.\(name)", &c)
                }
            }
            for (j, w) in rule.when.enumerated() {
                let wp = "\(p).when[\(j)]"
                guard let key = w.key, !key.isEmpty else {
                    c.add(wp + ".key", "key is required")
                    continue
                }
                guard let kind = conditionKind(key) else {
                    c.add(wp + ".key", "unknown or unsupported condition key \"\(key)\"")
                    continue
                }
                if w.values.isEmpty && w.notValues.isEmpty { c.add(wp, "values or notValues is required") }
                attributeValues(kind, w.values, wp + ".values", &c)
                attributeValues(kind, w.notValues, wp + ".notValues", &c)
            }
        }
    }
}

extension SecurityRules {
    enum ValueKind { case string, address, port }

    /// The kind of values a `when` key takes; nil for keys meshd does not evaluate.
    static func conditionKind(_ key: String) -> ValueKind? {
        switch key {
        case "source.ip", "remote.ip", "destination.ip": return .address
        case "destination.port": return .port
        case "source.namespace", "source.principal", "request.auth.principal", "request.auth.audiences",
             "request.auth.presenter", "connection.sni":
            return .string
        default:
            func bracketed(_ prefix: String, single: Bool) -> Bool {
                guard key.hasPrefix(prefix + "["), key.hasSuffix("]") else { return false }
                let parts = key.dropFirst(prefix.count + 1).dropLast().components(separatedBy: "][")
                return (!single || parts.count == 1) && parts.allSatisfy { !$0.isEmpty && !$0.contains("[") && !$0.contains("]") }
            }
            return bracketed("request.headers", single: true) || bracketed("request.auth.claims", single: false) ? .string : nil
        }
    }

    static func attributeValues(_ kind: ValueKind, _ values: [String], _ path: String, _ c: inout Issues) {
        for (i, v) in values.enumerated() {
            switch kind {
            case .string:
                if v.isEmpty { c.add("\(path)[\(i)]", "must not be empty") }
            case .port:
                if Int(v).map({ !(0...65535).contains($0) }) ?? true { c.add("\(path)[\(i)]", "\"\(v)\" is not a port number") }
            case .address:
                if !isAddressOrBlock(v) { c.add("\(path)[\(i)]", "\"\(v)\" is not an IP address or CIDR block") }
            }
        }
    }

    static func isAddressOrBlock(_ text: String) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = try? SocketAddress(ipAddress: String(parts[0]), port: 0) else { return false }
        guard parts.count == 2 else { return true }
        let bits = address.protocol == .inet ? 32 : 128
        return Int(parts[1]).map { (0...bits).contains($0) } ?? false
    }

    /// Istio's ParseJwksURI: a URL of scheme http or https.
    static func jwksURIError(_ uri: String) -> String? {
        guard let u = URLComponents(string: uri) else { return "jwksUri \"\(uri)\" is not a valid URL" }
        let scheme = u.scheme ?? ""
        return scheme == "http" || scheme == "https" ? nil : "URI scheme \"\(scheme)\" is not supported"
    }

    /// Istio's ValidateStrictHTTPHeaderName: letters, digits, '-' and '_'.
    static func isStrictHeaderName(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
    }

    /// Why an inline JWKS cannot serve (shape only; the proxies build the keys).
    static func jwksError(_ text: String) -> String? {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else { return "Jwks is an invalid JSON" }
        guard let keys = json["keys"]?.arrayValue else { return "Jwks does not have [keys] field, or it is not an array" }
        let usable = keys.contains { k in
            switch k["kty"]?.stringValue {
            case "RSA": return k["n"]?.stringValue != nil && k["e"]?.stringValue != nil
            case "EC": return ["P-256", "P-384"].contains(k["crv"]?.stringValue ?? "") && k["x"]?.stringValue != nil && k["y"]?.stringValue != nil
            default: return false
            }
        }
        return usable ? nil : "Jwks doesn't have any valid public key (RSA, or EC on P-256/P-384)"
    }
}
