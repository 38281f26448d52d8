import FilterHost
import MeshAPI
import Transport

/// `meshd.cors` (Envoy's CorsPolicy), per route or virtual host; on the listener it is the
/// policy for routes without their own.
///
///     allowOrigins: [{exact: "https://a.example"}, {prefix: "https://"}, {safeRegex: "https://.*\\.example"}]
///     allowMethods: [GET, POST]      # "*": the requested method is echoed
///     allowHeaders: [x-custom]       # "*": the requested headers are echoed
///     exposeHeaders: [x-trace]
///     maxAgeSeconds: 86400
///     allowCredentials: true
///     forwardNotMatchingPreflights: true   # default, as Envoy's
struct CorsConfig: Sendable {
    static let name = "meshd.cors"

    enum OriginMatcher: Sendable {
        case exact(String)
        case prefix(String)
        case suffix(String)
        case regex(RE2Regex)

        func matches(_ origin: String) -> Bool {
            switch self {
            case .exact(let e): origin == e
            case .prefix(let p): origin.hasPrefix(p)
            case .suffix(let s): origin.hasSuffix(s)
            case .regex(let r): r.wholeMatch(origin)
            }
        }
    }

    let allowOrigins: [OriginMatcher]
    /// Header values as sent: the lists joined with ",", as Envoy keeps them.
    let allowMethods: String?
    let allowHeaders: String?
    let exposeHeaders: String?
    let maxAge: String?
    let allowCredentials: Bool
    let forwardNotMatchingPreflights: Bool

    /// Whether `origin` may make cross-origin requests. A matcher that matches `*` allows
    /// every origin (Envoy's rule); the allowed origin is still echoed, never `*`.
    func allows(origin: String) -> Bool {
        allowOrigins.contains { $0.matches("*") || $0.matches(origin) }
    }

    init(_ config: JSONValue?) throws {
        guard let config else { throw ConfigError(path: "", reason: "a policy is required") }
        guard let o = config.objectValue else { throw ConfigError(path: "", reason: "must be a map") }
        let known = ["allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAgeSeconds",
                     "allowCredentials", "forwardNotMatchingPreflights"]
        for key in o.keys.sorted() where !known.contains(key) {
            throw ConfigError(path: key, reason: "unknown field (known: \(known.joined(separator: ", ")))")
        }
        allowOrigins = try (o["allowOrigins"].map { try Self.list($0, at: "allowOrigins") } ?? []).enumerated().map {
            try Self.origin($1, at: "allowOrigins[\($0)]")
        }
        allowMethods = try Self.joined(o["allowMethods"], at: "allowMethods")
        allowHeaders = try Self.joined(o["allowHeaders"], at: "allowHeaders")
        exposeHeaders = try Self.joined(o["exposeHeaders"], at: "exposeHeaders")
        if let v = o["maxAgeSeconds"] {
            guard let n = v.asNumber, n >= 0, n == n.rounded() else {
                throw ConfigError(path: "maxAgeSeconds", reason: "must be a whole number of seconds")
            }
            maxAge = String(Int64(n))
        } else {
            maxAge = nil
        }
        allowCredentials = try Self.flag(o["allowCredentials"], at: "allowCredentials") ?? false
        forwardNotMatchingPreflights = try Self.flag(o["forwardNotMatchingPreflights"], at: "forwardNotMatchingPreflights") ?? true
    }

    private static func list(_ v: JSONValue, at path: String) throws -> [JSONValue] {
        guard let a = v.arrayValue else { throw ConfigError(path: path, reason: "must be a list") }
        return a
    }

    private static func origin(_ v: JSONValue, at path: String) throws -> OriginMatcher {
        guard let o = v.objectValue, o.count == 1, let (kind, value) = o.first, let s = value.stringValue else {
            throw ConfigError(path: path, reason: "must be one of {exact|prefix|suffix|safeRegex: string}")
        }
        switch kind {
        case "exact": return .exact(s)
        case "prefix": return .prefix(s)
        case "suffix": return .suffix(s)
        case "safeRegex":
            do {
                return .regex(try RE2Regex(s))
            } catch {
                throw ConfigError(path: path + ".safeRegex", reason: error.description)
            }
        default: throw ConfigError(path: path, reason: "unknown matcher \"\(kind)\" (known: exact, prefix, suffix, safeRegex)")
        }
    }

    private static func joined(_ v: JSONValue?, at path: String) throws -> String? {
        guard let v else { return nil }
        let items = try list(v, at: path).map {
            guard let s = $0.stringValue else { throw ConfigError(path: path, reason: "must be a list of strings") }
            return s
        }
        return items.isEmpty ? nil : items.joined(separator: ",")
    }

    private static func flag(_ v: JSONValue?, at path: String) throws -> Bool? {
        guard let v else { return nil }
        guard let b = v.asBool else { throw ConfigError(path: path, reason: "must be true or false") }
        return b
    }
}

/// Makes the filter for each stream; the listener's policy (if any) is the default.
struct CorsFactory: HTTPFilterFactory {
    let config: CorsConfig?

    static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        CorsFactory(config: try config.map { try CorsConfig($0) })
    }

    static func parsePerRoute(_ config: JSONValue) throws -> any Sendable { try CorsConfig(config) }

    func makeFilter(stream: StreamControl) -> HTTPFilter { CorsFilter(config: config, stream: stream) }
}
