/// Light checks for the security kinds meshd keeps but does not translate yet.
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
            if (rule.issuer ?? "").isEmpty { c.add(p + ".issuer", "issuer is required") }
            if rule.jwks != nil && rule.jwksUri != nil { c.add(p, "only one of jwks or jwksUri may be set") }
        }
    }

    static func check(_ s: AuthorizationPolicy, _ c: inout Issues) {
        if s.selector != nil && (!s.targetRefs.isEmpty || s.targetRef != nil) {
            c.add("spec", "only one of selector or targetRefs may be set")
        }
        if s.action == "CUSTOM" && s.provider == nil { c.add("spec.provider", "a CUSTOM action needs a provider") }
        if s.provider != nil && s.action != "CUSTOM" { c.add("spec.provider", "provider is only allowed with the CUSTOM action") }
        for (i, rule) in s.rules.enumerated() {
            for (j, w) in rule.when.enumerated() where (w.key ?? "").isEmpty {
                c.add("spec.rules[\(i)].when[\(j)].key", "key is required")
            }
        }
    }
}
