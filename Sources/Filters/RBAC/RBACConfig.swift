#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FilterHost
import LuaRuntime
import MeshAPI

/// `meshd.rbac`: the AuthorizationPolicies that apply to a workload, in Istio's own shape:
/// `{policies: [{name, action: ALLOW|DENY|AUDIT|CUSTOM, rules: [{from: [{source}], to:
/// [{operation}], when: [{key, values, notValues}]}], provider, dryRun}], providers: {name:
/// ExtAuthzProvider or LuaAuthorizer}, destinationPort, remoteFromForwardedFor}`. A CUSTOM policy whose
/// `provider` is not among `providers` denies what it matches (Istio's answer to a provider
/// it cannot use).
/// `destinationPort` is the workload's port (a sidecar's app port); without it the
/// listener's own port is used. `remoteFromForwardedFor` (a sidecar's inbound listener):
/// `remote.ip` is the client the previous hop saw, from X-Forwarded-For; without it (a
/// gateway, Envoy's `use_remote_address` with no trusted hops) it is the peer.
struct RBACConfig: Sendable {
    static let name = "meshd.rbac"

    /// The enforced policies.
    let policies: [RBACPolicy]
    /// Policies annotated `istio.io/dry-run: "true"`: evaluated and reported, never enforced.
    let dryRun: [RBACPolicy]
    let providers: [String: CustomAuthorizer]
    let destinationPort: Int?
    let remoteFromForwardedFor: Bool

    init(_ config: JSONValue?) throws {
        guard let config, let o = config.objectValue else { throw ConfigError(path: "", reason: "must be a map") }
        for key in o.keys.sorted() where !["policies", "providers", "destinationPort", "remoteFromForwardedFor"].contains(key) {
            throw ConfigError(path: key, reason: "unknown field (known: destinationPort, policies, providers, remoteFromForwardedFor)")
        }
        if case .bool(let b) = o["remoteFromForwardedFor"] { remoteFromForwardedFor = b } else { remoteFromForwardedFor = false }
        if case .number(let n) = o["destinationPort"] { destinationPort = Int(n) } else { destinationPort = nil }
        let all = try (o["policies"]?.arrayValue ?? []).enumerated().map { i, p in
            (try RBACPolicy(p, at: "policies[\(i)]"), p["dryRun"] == .bool(true))
        }
        policies = all.filter { !$0.1 }.map { $0.0 }
        dryRun = all.filter { $0.1 }.map { $0.0 }
        var providers: [String: CustomAuthorizer] = [:]
        for (name, v) in o["providers"]?.objectValue ?? [:] {
            providers[name] = v["luaPlugin"] != nil ? .lua(try LuaAuthorizer(v, at: "providers.\(name)"))
                : .http(try ExtAuthzProvider(v, at: "providers.\(name)"))
        }
        self.providers = providers
    }

    private init(_ c: RBACConfig, providers: [String: CustomAuthorizer]) {
        policies = c.policies
        dryRun = c.dryRun
        destinationPort = c.destinationPort
        remoteFromForwardedFor = c.remoteFromForwardedFor
        self.providers = providers
    }

    /// The same config with each Lua authorizer running the version `version` gives for it.
    func bindingLua(_ version: (LuaPluginConfig) -> LuaPluginVersion) -> RBACConfig {
        RBACConfig(self, providers: providers.mapValues { p in
            guard case .lua(let lua) = p else { return p }
            return .lua(lua.running(version(lua.factory.plugin)))
        })
    }
}

/// What decides a CUSTOM policy: an HTTP service (`envoyExtAuthzHttp`) or a Lua plugin
/// (`meshdLuaPlugin`).
enum CustomAuthorizer: Sendable {
    case http(ExtAuthzProvider)
    case lua(LuaAuthorizer)
}

struct RBACPolicy: Sendable {
    enum Action: String, Sendable {
        case allow = "ALLOW", deny = "DENY", audit = "AUDIT"
        /// Asks the policy's external authorizer about what it matches.
        case custom = "CUSTOM"
    }

    let name: String
    let action: Action
    let rules: [RBACRule]
    /// A CUSTOM policy's authorizer (a `providers` key).
    let provider: String?

    init(_ v: JSONValue, at path: String) throws {
        name = v["name"]?.stringValue ?? ""
        provider = v["provider"]?.stringValue
        let actionText = v["action"]?.stringValue ?? "ALLOW"
        guard let action = Action(rawValue: actionText) else {
            throw ConfigError(path: path + ".action", reason: "\"\(actionText)\" is not one of ALLOW, DENY, AUDIT, CUSTOM")
        }
        self.action = action
        rules = try (v["rules"]?.arrayValue ?? []).enumerated().map { i, r in try RBACRule(r, at: "\(path).rules[\(i)]") }
    }

    init(name: String, action: Action, rules: [RBACRule], provider: String? = nil) {
        self.name = name
        self.provider = provider
        self.action = action
        self.rules = rules
    }

    /// A policy with no rules matches nothing (so an ALLOW policy with none allows nothing).
    func matches(_ request: RBACRequest) -> Bool { rules.contains { $0.matches(request) } }
}

/// One rule: any `from`, any `to`, every `when` (an empty list matches).
struct RBACRule: Sendable {
    let from: [[RBACPredicate]]
    let to: [[RBACPredicate]]
    let when: [RBACPredicate]

    private static let sourceFields: [(String, RBACAttribute)] = [
        ("principals", .principal), ("requestPrincipals", .requestPrincipal), ("namespaces", .namespace),
        ("ipBlocks", .sourceIP), ("remoteIpBlocks", .remoteIP), ("serviceAccounts", .serviceAccount),
    ]
    private static let operationFields: [(String, RBACAttribute)] = [
        ("hosts", .host), ("ports", .destinationPort), ("methods", .method), ("paths", .path),
    ]

    init(_ v: JSONValue, at path: String) throws {
        from = try (v["from"]?.arrayValue ?? []).enumerated().map { i, f in
            try Self.fields(f["source"], Self.sourceFields, at: "\(path).from[\(i)].source")
        }
        to = try (v["to"]?.arrayValue ?? []).enumerated().map { i, t in
            try Self.fields(t["operation"], Self.operationFields, at: "\(path).to[\(i)].operation")
        }
        when = try (v["when"]?.arrayValue ?? []).enumerated().flatMap { i, c in
            let p = "\(path).when[\(i)]"
            guard let key = c["key"]?.stringValue, let attribute = RBACAttribute(conditionKey: key) else {
                throw ConfigError(path: p + ".key", reason: "unknown condition key \"\(c["key"]?.stringValue ?? "")\"")
            }
            var out: [RBACPredicate] = []
            if let values = c["values"]?.arrayValue {
                out.append(try RBACPredicate(attribute, values, negated: false, at: p + ".values"))
            }
            if let values = c["notValues"]?.arrayValue {
                out.append(try RBACPredicate(attribute, values, negated: true, at: p + ".notValues"))
            }
            guard !out.isEmpty else { throw ConfigError(path: p, reason: "values or notValues is required") }
            return out
        }
    }

    init(from: [[RBACPredicate]] = [], to: [[RBACPredicate]] = [], when: [RBACPredicate] = []) {
        self.from = from
        self.to = to
        self.when = when
    }

    /// `fields`, and each `notFields`, of a source or an operation: all must match.
    private static func fields(_ v: JSONValue?, _ known: [(String, RBACAttribute)], at path: String) throws -> [RBACPredicate] {
        guard let v else { return [] }
        guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map") }
        let names = Set(known.flatMap { [$0.0, "not" + $0.0.prefix(1).uppercased() + $0.0.dropFirst()] })
        for key in o.keys.sorted() where !names.contains(key) {
            throw ConfigError(path: "\(path).\(key)", reason: "not supported (known: \(names.sorted().joined(separator: ", ")))")
        }
        var out: [RBACPredicate] = []
        for (name, attribute) in known {
            let notName = "not" + name.prefix(1).uppercased() + name.dropFirst()
            if let values = o[name]?.arrayValue {
                out.append(try RBACPredicate(attribute, values, negated: false, at: "\(path).\(name)"))
            }
            if let values = o[notName]?.arrayValue {
                out.append(try RBACPredicate(attribute, values, negated: true, at: "\(path).\(notName)"))
            }
        }
        return out
    }

    func matches(_ request: RBACRequest) -> Bool {
        (from.isEmpty || from.contains { $0.allSatisfy { $0.matches(request) } })
            && (to.isEmpty || to.contains { $0.allSatisfy { $0.matches(request) } })
            && when.allSatisfy { $0.matches(request) }
    }
}

/// What a field or condition looks at.
enum RBACAttribute: Sendable, Equatable {
    case principal, requestPrincipal, namespace, sourceIP, remoteIP
    /// `namespace/name` from the principal.
    case serviceAccount
    case host, destinationPort, method, path
    case header(String)
    case audiences, presenter
    /// `request.auth.claims[a][b]`: the path into the payload.
    case claim([String])
    case destinationIP, sni

    init?(conditionKey key: String) {
        switch key {
        case "source.ip": self = .sourceIP
        case "remote.ip": self = .remoteIP
        case "source.namespace": self = .namespace
        case "source.principal": self = .principal
        case "request.auth.principal": self = .requestPrincipal
        case "request.auth.audiences": self = .audiences
        case "request.auth.presenter": self = .presenter
        case "destination.ip": self = .destinationIP
        case "destination.port": self = .destinationPort
        case "connection.sni": self = .sni
        default:
            if let name = Self.brackets(key, after: "request.headers"), name.count == 1, !name[0].isEmpty {
                self = .header(name[0].lowercased())
            } else if let path = Self.brackets(key, after: "request.auth.claims"), !path.isEmpty,
                      path.allSatisfy({ !$0.isEmpty }) {
                self = .claim(path)
            } else {
                return nil
            }
        }
    }

    /// `prefix[a][b]` → ["a", "b"]; nil when `key` is not of that form.
    private static func brackets(_ key: String, after prefix: String) -> [String]? {
        guard key.hasPrefix(prefix + "["), key.hasSuffix("]") else { return nil }
        let inner = key.dropFirst(prefix.count + 1).dropLast()
        let parts = inner.components(separatedBy: "][")
        return parts.contains { $0.contains("[") || $0.contains("]") } ? nil : parts
    }

    var isAddress: Bool { [.sourceIP, .remoteIP, .destinationIP].contains(self) }
}

/// One field or condition: any value matches (or, negated, none does). An attribute the
/// request does not have matches no value, so its negation matches.
struct RBACPredicate: Sendable {
    enum Pattern: Sendable {
        case string(StringPattern)
        case block(IPBlock)
        case port(Int)
    }

    let attribute: RBACAttribute
    let patterns: [Pattern]
    let negated: Bool

    init(_ attribute: RBACAttribute, _ values: [JSONValue], negated: Bool, at path: String) throws {
        self.attribute = attribute
        self.negated = negated
        patterns = try values.enumerated().map { i, v -> Pattern in
            guard let s = v.stringValue else { throw ConfigError(path: "\(path)[\(i)]", reason: "must be a string") }
            if attribute.isAddress {
                guard let block = IPBlock(s) else { throw ConfigError(path: "\(path)[\(i)]", reason: "\"\(s)\" is not an IP address or CIDR block") }
                return .block(block)
            }
            if attribute == .destinationPort {
                guard let port = Int(s), (0...65535).contains(port) else {
                    throw ConfigError(path: "\(path)[\(i)]", reason: "\"\(s)\" is not a port number")
                }
                return .port(port)
            }
            return .string(StringPattern(s, ignoreCase: attribute == .host))
        }
    }

    init(_ attribute: RBACAttribute, _ values: [String], negated: Bool = false) throws {
        try self.init(attribute, values.map(JSONValue.string), negated: negated, at: "")
    }

    func matches(_ request: RBACRequest) -> Bool {
        let values = request.values(attribute)
        let any = values.contains { value in
            patterns.contains { p in
                switch p {
                case .string(let s): s.matches(value)
                case .block(let b): b.contains(value)
                case .port(let n): Int(value) == n
                }
            }
        }
        return negated ? !any : any
    }
}

struct RBACFactory: HTTPFilterFactory, LuaHostingFactory {
    let config: RBACConfig

    static func build(_ config: JSONValue?) throws -> HTTPFilterFactory { RBACFactory(config: try RBACConfig(config)) }

    func makeFilter(stream: StreamControl) -> HTTPFilter { RBACFilter(config: config, stream: stream) }

    func bindingLua(_ version: (LuaPluginConfig) -> LuaPluginVersion) -> HTTPFilterFactory {
        RBACFactory(config: config.bindingLua(version))
    }
}
