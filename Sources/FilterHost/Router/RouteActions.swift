import MeshAPI
import NIOHTTP1
import Transport

/// One way to change headers, for the router (a route's `headers`) and the header
/// mutation filter alike: remove, then set, then add.
extension HeaderMutation {
    public func apply(to headers: inout HTTPHeaders) {
        for name in remove ?? [] { headers.remove(name: name) }
        for (name, value) in set ?? [:] { headers.replaceOrAdd(name: name, value: value) }
        for (name, value) in add ?? [:] { headers.add(name: name, value: value) }
    }
}

extension Route {
    /// Headers for a redirect or direct response: the route's response changes.
    func localReplyHeaders() -> HTTPHeaders {
        var reply = HTTPHeaders()
        headers?.response?.apply(to: &reply)
        return reply
    }
}

extension RedirectAction {
    /// The `location` for a request: unset parts keep the request's scheme, host, port and path.
    func location(for head: RequestHead) -> String {
        let requestScheme = head.scheme.isEmpty ? "http" : head.scheme
        let newScheme = scheme ?? requestScheme
        var host: String
        var requestPort: String?
        if let authority {
            host = authority
        } else {
            host = head.authority
            if let split = Self.splitPort(head.authority) {
                host = split.host
                requestPort = split.port
            }
            // A changed scheme means the old port no longer applies.
            if newScheme != requestScheme { requestPort = nil }
        }
        if let port {
            if let split = Self.splitPort(host) { host = split.host }
            let isDefault = (newScheme == "http" && port == 80) || (newScheme == "https" && port == 443)
            requestPort = isDefault ? nil : String(port)
        }
        let path = uri.map { Self.replacingPath(of: head.path, with: $0) } ?? head.path
        return newScheme + "://" + host + (requestPort.map { ":" + $0 } ?? "") + path
    }

    /// Replaces a request target's path, keeping its query unless the new path has one.
    static func replacingPath(of target: String, with newPath: String) -> String {
        if newPath.contains("?") { return newPath }
        guard let q = target.firstIndex(of: "?") else { return newPath }
        return newPath + target[q...]
    }

    private static func splitPort(_ authority: String) -> (host: String, port: String)? {
        guard let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") else { return nil }
        return (String(authority[..<colon]), String(authority[authority.index(after: colon)...]))
    }
}

extension RouterFilter {
    /// What the snapshot checks of a route's retry and mirror policies: nothing the router
    /// would not enforce is accepted.
    static func validate(_ action: RouteAction, clusters: [String: Cluster], at path: String) throws {
        if let policy = action.retryPolicy {
            let unknown = RetryConditions.parse(policy.retryOn).unknown
            if let first = unknown.first {
                throw ConfigError(path: path + ".retryPolicy.retryOn", reason: "unknown retry condition '\(first)'")
            }
            if let n = policy.numRetries, n < 0 {
                throw ConfigError(path: path + ".retryPolicy.numRetries", reason: "must not be negative")
            }
            for (i, h) in (policy.retriableHeaders ?? []).enumerated() where h.safeRegex != nil {
                throw ConfigError(path: "\(path).retryPolicy.retriableHeaders[\(i)].safeRegex",
                                  reason: "regex matchers are not supported for retriable headers")
            }
            if let base = policy.backoffBaseIntervalMs, base <= 0 {
                throw ConfigError(path: path + ".retryPolicy.backoffBaseIntervalMs", reason: "must be positive")
            }
        }
        for (i, m) in (action.requestMirrorPolicies ?? []).enumerated() {
            if clusters[m.cluster] == nil {
                throw ConfigError(path: "\(path).requestMirrorPolicies[\(i)].cluster", reason: "unknown cluster '\(m.cluster)'")
            }
            if let p = m.percent, !(0...100).contains(p) {
                throw ConfigError(path: "\(path).requestMirrorPolicies[\(i)].percent", reason: "must be between 0 and 100")
            }
        }
    }
}
