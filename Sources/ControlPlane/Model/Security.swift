/// security.istio.io resources: parsed, kept and validated; meshd does not translate them yet.

public struct PeerAuthentication: NodeDecodable, Equatable {
    public static let modes = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]

    public struct MutualTLS: NodeDecodable, Equatable {
        public var mode: String?

        init(_ r: ObjectReader) {
            mode = r.enumeration("mode", PeerAuthentication.modes)
        }
    }

    public var selector: LabelSelector?
    public var mtls: MutualTLS?
    public var portLevelMtls: [String: MutualTLS]

    init(_ r: ObjectReader) {
        selector = r.object("selector")
        mtls = r.object("mtls")
        portLevelMtls = r.objectMap("portLevelMtls")
    }
}

public struct RequestAuthentication: NodeDecodable, Equatable {
    public struct JWTRule: NodeDecodable, Equatable {
        public struct HeaderSource: NodeDecodable, Equatable {
            public var name: String?
            public var prefix: String?

            init(_ r: ObjectReader) {
                name = r.string("name")
                prefix = r.string("prefix")
            }
        }

        public struct ClaimToHeader: NodeDecodable, Equatable {
            public var header: String?
            public var claim: String?

            init(_ r: ObjectReader) {
                header = r.string("header")
                claim = r.string("claim")
            }
        }

        public var issuer: String?
        public var audiences: [String]
        public var jwksUri: String?
        public var jwks: String?
        public var fromHeaders: [HeaderSource]
        public var fromParams: [String]
        public var fromCookies: [String]
        public var outputPayloadToHeader: String?
        public var forwardOriginalToken: Bool?
        public var outputClaimToHeaders: [ClaimToHeader]
        public var timeoutMs: Int?
        public var spaceDelimitedClaims: [String]

        init(_ r: ObjectReader) {
            issuer = r.string("issuer")
            audiences = r.strings("audiences")
            jwksUri = r.string("jwksUri")
            jwks = r.string("jwks")
            fromHeaders = r.objects("fromHeaders")
            fromParams = r.strings("fromParams")
            fromCookies = r.strings("fromCookies")
            outputPayloadToHeader = r.string("outputPayloadToHeader")
            forwardOriginalToken = r.bool("forwardOriginalToken")
            outputClaimToHeaders = r.objects("outputClaimToHeaders")
            timeoutMs = r.durationMs("timeout")
            spaceDelimitedClaims = r.strings("spaceDelimitedClaims")
        }
    }

    public var selector: LabelSelector?
    public var targetRef: PolicyTargetReference?
    public var targetRefs: [PolicyTargetReference]
    public var jwtRules: [JWTRule]

    init(_ r: ObjectReader) {
        selector = r.object("selector")
        targetRef = r.object("targetRef")
        targetRefs = r.objects("targetRefs")
        jwtRules = r.objects("jwtRules")
    }
}

public struct AuthorizationPolicy: NodeDecodable, Equatable {
    public static let actions = ["ALLOW", "DENY", "AUDIT", "CUSTOM"]

    public struct Source: NodeDecodable, Equatable {
        public var fields: [String: [String]]
        static let names = ["principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces",
                            "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks",
                            "serviceAccounts", "notServiceAccounts", "trustDomains", "notTrustDomains"]

        init(_ r: ObjectReader) {
            var f: [String: [String]] = [:]
            for n in Self.names { let v = r.strings(n); if !v.isEmpty { f[n] = v } }
            fields = f
        }
    }

    public struct Operation: NodeDecodable, Equatable {
        public var fields: [String: [String]]
        static let names = ["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"]

        init(_ r: ObjectReader) {
            var f: [String: [String]] = [:]
            for n in Self.names { let v = r.strings(n); if !v.isEmpty { f[n] = v } }
            fields = f
        }
    }

    public struct From: NodeDecodable, Equatable {
        public var source: Source?
        init(_ r: ObjectReader) { source = r.object("source") }
    }

    public struct To: NodeDecodable, Equatable {
        public var operation: Operation?
        init(_ r: ObjectReader) { operation = r.object("operation") }
    }

    public struct Condition: NodeDecodable, Equatable {
        public var key: String?
        public var values: [String]
        public var notValues: [String]

        init(_ r: ObjectReader) {
            key = r.string("key")
            values = r.strings("values")
            notValues = r.strings("notValues")
        }
    }

    public struct Rule: NodeDecodable, Equatable {
        public var from: [From]
        public var to: [To]
        public var when: [Condition]

        init(_ r: ObjectReader) {
            from = r.objects("from")
            to = r.objects("to")
            when = r.objects("when")
        }
    }

    public struct Provider: NodeDecodable, Equatable {
        public var name: String?
        init(_ r: ObjectReader) { name = r.string("name") }
    }

    public var selector: LabelSelector?
    public var targetRef: PolicyTargetReference?
    public var targetRefs: [PolicyTargetReference]
    public var rules: [Rule]
    public var action: String?
    public var provider: Provider?

    init(_ r: ObjectReader) {
        selector = r.object("selector")
        targetRef = r.object("targetRef")
        targetRefs = r.objects("targetRefs")
        rules = r.objects("rules")
        action = r.enumeration("action", Self.actions)
        provider = r.object("provider")
    }
}
