import MeshAPI

/// AuthorizationPolicies on TCP traffic, as Istio builds its network RBAC filter: only what a
/// connection has (principals, namespaces, IP blocks, ports and the L4 `when` keys) can
/// match. A rule naming an HTTP-only field (hosts, methods, paths, requestPrincipals,
/// `request.*` keys) is dropped from an ALLOW policy, so it allows less, and loses those
/// fields in a DENY or AUDIT policy, so it denies more (Istio's `checkError` in
/// pilot/pkg/security/authz/model). CUSTOM is HTTP only.
enum TCPAuthorization {
    static let httpSourceFields: Set<String> = ["requestPrincipals", "notRequestPrincipals"]
    static let httpOperationFields: Set<String> = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"]

    /// A `meshd.rbac` policy (SecurityBuilder's shape) in its TCP form; nil for CUSTOM.
    static func policy(_ policy: JSONValue) -> JSONValue? {
        guard case .object(var o) = policy else { return policy }
        let action = o["action"]?.stringValue ?? "ALLOW"
        guard action != "CUSTOM" else { return nil }
        let rules = o["rules"]?.arrayValue ?? []
        o["rules"] = .array(action == "ALLOW" ? rules.filter { !usesHTTP($0) } : rules.map(withoutHTTP))
        return .object(o)
    }

    static func usesHTTP(_ rule: JSONValue) -> Bool {
        let sources = (rule["from"]?.arrayValue ?? []).compactMap { $0["source"]?.objectValue }
        let operations = (rule["to"]?.arrayValue ?? []).compactMap { $0["operation"]?.objectValue }
        return sources.contains { !httpSourceFields.isDisjoint(with: $0.keys) }
            || operations.contains { !httpOperationFields.isDisjoint(with: $0.keys) }
            || (rule["when"]?.arrayValue ?? []).contains { isHTTPKey($0["key"]?.stringValue ?? "") }
    }

    static func withoutHTTP(_ rule: JSONValue) -> JSONValue {
        guard case .object(var r) = rule else { return rule }
        func strip(_ list: String, _ item: String, _ fields: Set<String>) {
            guard let entries = r[list]?.arrayValue else { return }
            r[list] = .array(entries.map { e in
                .object([item: .object((e[item]?.objectValue ?? [:]).filter { !fields.contains($0.key) })])
            })
        }
        strip("from", "source", httpSourceFields)
        strip("to", "operation", httpOperationFields)
        if let when = r["when"]?.arrayValue {
            let kept = when.filter { !isHTTPKey($0["key"]?.stringValue ?? "") }
            r["when"] = kept.isEmpty ? nil : .array(kept)
        }
        return .object(r)
    }

    /// `request.headers[...]` and `request.auth.*`: facts of an HTTP request.
    static func isHTTPKey(_ key: String) -> Bool { key.hasPrefix("request.") }
}
