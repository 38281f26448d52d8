import MeshAPI

/// The server-side security filters of a proxy: `meshd.jwt_authn` for the
/// RequestAuthentications and then `meshd.rbac` for the AuthorizationPolicies that apply to
/// it, placed first in the sidecar's inbound listener and in each gateway listener.
///
/// A policy applies to a proxy as in Istio: one in the root namespace (`istio-system`)
/// applies mesh-wide, one in another namespace to that namespace's workloads; a `selector`
/// narrows it to the workloads whose labels match. `targetRefs` of kind Gateway attach it to
/// the listeners carrying that Gateway's servers; other kinds are for waypoints, which meshd
/// has not, and are announced.
enum SecurityBuilder {
    /// The filters for `listener` (a gateway listener; nil for a sidecar's inbound listener).
    static func filters(_ ctx: TranslationContext, listener: String? = nil) -> [HTTPFilterConfig] {
        var out: [HTTPFilterConfig] = []
        let authn = ctx.store.requestAuthentications.filter {
            applies($0, selector: $0.spec.selector, targetRefs: refs($0.spec.targetRef, $0.spec.targetRefs), ctx, listener)
        }
        let providers = authn.flatMap { ra in ra.spec.jwtRules.enumerated().compactMap { i, rule in provider(ra, i, rule, ctx) } }
        if !providers.isEmpty {
            out.append(HTTPFilterConfig(name: "meshd.jwt_authn", config: .object(["providers": .array(providers)])))
        }
        let authz = authorizationPolicies(ctx, listener: listener)
        if !authz.isEmpty {
            var config: [String: JSONValue] = ["policies": .array(authz.map { policy($0, ctx) })]
            let providers = ExtAuthzBuilder.providers(for: authz, ctx)
            if !providers.isEmpty { config["providers"] = .object(providers) }
            out.append(HTTPFilterConfig(name: "meshd.rbac", config: .object(config)))
        }
        return out
    }

    /// The network filter for a gateway's TCP proxy listener: `meshd.rbac` with the policies
    /// in their TCP form (`TCPAuthorization`). RequestAuthentication and CUSTOM policies have
    /// nothing to act on in bytes; Istio ignores them there, and so is it said.
    /// `serverPort` is the Gateway server's port, the `destination.port` the policies name
    /// (the listener may be bound elsewhere, `ProxyIdentity.gatewayPorts`).
    /// `listener` nil: a sidecar's inbound listener (its `serverPort` is the app's, set per proxy by `inboundNetwork`).
    static func networkFilters(_ ctx: TranslationContext, listener: String?, serverPort: Int) -> [HTTPFilterConfig] {
        let name = listener ?? Naming.inbound
        for ra in ctx.store.requestAuthentications
        where applies(ra, selector: ra.spec.selector, targetRefs: refs(ra.spec.targetRef, ra.spec.targetRefs), ctx, listener) {
            ctx.warn(ra.id, "", "JWTs are HTTP: this RequestAuthentication does not apply to the TCP traffic of listener \(name)")
        }
        let authz = authorizationPolicies(ctx, listener: listener)
        var policies: [JSONValue] = []
        for ap in authz {
            if let tcp = TCPAuthorization.policy(policy(ap, ctx)) {
                policies.append(tcp)
            } else {
                ctx.warn(ap.id, "spec.action", "CUSTOM authorization is HTTP only: not applied to the TCP traffic of listener \(name)")
            }
        }
        guard !policies.isEmpty else { return [] }
        return [HTTPFilterConfig(name: "meshd.rbac", config: .object(["policies": .array(policies),
                                                                      "destinationPort": .number(Double(serverPort))]))]
    }

    private static func authorizationPolicies(_ ctx: TranslationContext, listener: String?) -> [Config<AuthorizationPolicy>] {
        ctx.store.authorizationPolicies.filter {
            applies($0, selector: $0.spec.selector, targetRefs: refs($0.spec.targetRef, $0.spec.targetRefs), ctx, listener)
        }
    }

    /// The sidecar's filters with the app's port as the policies' `destination.port`, and
    /// (HTTP) `remote.ip` from X-Forwarded-For (the client the previous hop, e.g. a gateway, saw).
    static func inbound(_ filters: [HTTPFilterConfig], appPort: Int, http: Bool = true) -> [HTTPFilterConfig] {
        filters.map { f in
            guard f.name == "meshd.rbac", case .object(var o) = f.config else { return f }
            o["destinationPort"] = .number(Double(appPort))
            if http { o["remoteFromForwardedFor"] = .bool(true) }
            return HTTPFilterConfig(name: f.name, config: .object(o))
        }
    }

    private static func refs(_ one: PolicyTargetReference?, _ many: [PolicyTargetReference]) -> [PolicyTargetReference] {
        (one.map { [$0] } ?? []) + many
    }

    private static func applies<T: Sendable & Equatable>(_ c: Config<T>, selector: LabelSelector?, targetRefs: [PolicyTargetReference],
                                   _ ctx: TranslationContext, _ listener: String?) -> Bool {
        guard targetRefs.isEmpty else {
            return targetRefs.enumerated().contains { i, ref in
                guard ref.kind == "Gateway", let name = ref.name else {
                    ctx.warn(c.id, "spec.targetRefs[\(i)]", "meshd attaches policies to Gateways only (kind \(ref.kind ?? "")); this target is not enforced")
                    return false
                }
                guard let listener else { return false }
                return ctx.listenersByGateway["Gateway/\(ref.namespace ?? c.namespace)/\(name)"]?.contains(listener) ?? false
            }
        }
        guard c.namespace == ctx.proxy.namespace || c.namespace == ctx.store.meshConfig.rootNamespace else { return false }
        return ctx.proxy.labels.matches(selector?.matchLabels ?? [:])
    }

    // MARK: RequestAuthentication

    private static func provider(_ ra: Config<RequestAuthentication>, _ i: Int, _ rule: RequestAuthentication.JWTRule,
                                 _ ctx: TranslationContext) -> JSONValue? {
        let path = "spec.jwtRules[\(i)]"
        var o = provider(rule, jwks: rule.jwks, ra.id, path, ctx)
        if rule.jwks == nil, let uri = rule.jwksUri {
            o["remoteJwks"] = RemoteJWKSBuilder.remote(uri: uri, timeoutMs: rule.timeoutMs, ra.id, path + ".jwksUri", ctx)
        }
        return .object(o)
    }

    private static func provider(_ rule: RequestAuthentication.JWTRule, jwks: String?, _ id: String, _ path: String,
                                 _ ctx: TranslationContext) -> [String: JSONValue] {
        if !rule.spaceDelimitedClaims.isEmpty {
            ctx.warn(id, path + ".spaceDelimitedClaims", "not supported yet: these claims match as single strings")
        }
        var o: [String: JSONValue] = ["issuer": .string(rule.issuer ?? "")]
        if let jwks { o["jwks"] = .string(jwks) }
        if !rule.audiences.isEmpty { o["audiences"] = .array(rule.audiences.map(JSONValue.string)) }
        if !rule.fromHeaders.isEmpty {
            o["fromHeaders"] = .array(rule.fromHeaders.map { h in
                .object(["name": .string(h.name ?? ""), "prefix": .string(h.prefix ?? "")])
            })
        }
        if !rule.fromParams.isEmpty { o["fromParams"] = .array(rule.fromParams.map(JSONValue.string)) }
        if !rule.fromCookies.isEmpty { o["fromCookies"] = .array(rule.fromCookies.map(JSONValue.string)) }
        if let f = rule.forwardOriginalToken { o["forwardOriginalToken"] = .bool(f) }
        if let h = rule.outputPayloadToHeader { o["outputPayloadToHeader"] = .string(h) }
        if !rule.outputClaimToHeaders.isEmpty {
            o["outputClaimToHeaders"] = .array(rule.outputClaimToHeaders.map { c in
                .object(["header": .string(c.header ?? ""), "claim": .string(c.claim ?? "")])
            })
        }
        return o
    }

    // MARK: AuthorizationPolicy

    private static func policy(_ ap: Config<AuthorizationPolicy>, _ ctx: TranslationContext) -> JSONValue {
        let action = ap.spec.action ?? "ALLOW"
        let rules: [JSONValue] = ap.spec.rules.map { rule in
            var r: [String: JSONValue] = [:]
            if !rule.from.isEmpty {
                r["from"] = .array(rule.from.map { f in .object(["source": fields(f.source?.fields ?? [:], ap.namespace)]) })
            }
            if !rule.to.isEmpty {
                r["to"] = .array(rule.to.map { t in .object(["operation": fields(t.operation?.fields ?? [:], ap.namespace)]) })
            }
            if !rule.when.isEmpty {
                r["when"] = .array(rule.when.map { w in
                    var c: [String: JSONValue] = ["key": .string(w.key ?? "")]
                    if !w.values.isEmpty { c["values"] = .array(w.values.map(JSONValue.string)) }
                    if !w.notValues.isEmpty { c["notValues"] = .array(w.notValues.map(JSONValue.string)) }
                    return .object(c)
                })
            }
            return .object(r)
        }
        var o: [String: JSONValue] = ["name": .string("\(ap.namespace).\(ap.name)"), "action": .string(action), "rules": .array(rules)]
        if action == "CUSTOM", let provider = ap.spec.provider?.name { o["provider"] = .string(provider) }
        if ap.meta.annotations["istio.io/dry-run"] == "true" {
            o["dryRun"] = .bool(true)
            if action != "ALLOW" && action != "DENY" {
                ctx.warn(ap.id, "metadata.annotations[istio.io/dry-run]",
                         "dry-run is evaluated for ALLOW and DENY policies; this \(action) policy is neither enforced nor evaluated")
            }
        }
        return .object(o)
    }

    /// A source's or operation's fields; `serviceAccounts` entries become `namespace/name`
    /// (a bare name is in the policy's namespace).
    private static func fields(_ f: [String: [String]], _ namespace: String) -> JSONValue {
        .object(f.mapValues { values in
            .array(values.map { .string($0) })
        }.merging(["serviceAccounts", "notServiceAccounts"].compactMap { key in
            f[key].map { (key, JSONValue.array($0.map { .string($0.contains("/") ? $0 : "\(namespace)/\($0)") })) }
        }, uniquingKeysWith: { _, new in new }))
    }
}

extension ConfigStore {
    var authorizationPolicies: [Config<AuthorizationPolicy>] {
        effective.compactMap { r in
            guard case .authorizationPolicy(let s) = r.spec else { return nil }
            return Config(kind: r.kind, meta: r.meta, location: r.location, spec: s)
        }
    }

    var requestAuthentications: [Config<RequestAuthentication>] {
        effective.compactMap { r in
            guard case .requestAuthentication(let s) = r.spec else { return nil }
            return Config(kind: r.kind, meta: r.meta, location: r.location, spec: s)
        }
    }
}
