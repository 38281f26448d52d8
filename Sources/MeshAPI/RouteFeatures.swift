/// Route features the control plane translates from Istio's HTTPRoute: query parameter
/// matching, redirects and per-route header changes.

/// Matches one query parameter by its percent-decoded value (the first occurrence counts).
/// Exactly one of `exact`, `prefix`, `safeRegex` (whole value), `present` is given.
public struct QueryParameterMatcher: Codable, Sendable, Equatable {
    public var name: String
    public var exact: String?
    public var prefix: String?
    public var safeRegex: String?
    /// true: the parameter must be present (any value); false: it must be absent.
    public var present: Bool?

    public init(name: String, exact: String? = nil, prefix: String? = nil, safeRegex: String? = nil,
                present: Bool? = nil) {
        self.name = name
        self.exact = exact
        self.prefix = prefix
        self.safeRegex = safeRegex
        self.present = present
    }
}

/// Answers a matched request with a redirect. Unset parts keep the request's.
public struct RedirectAction: Codable, Sendable, Equatable {
    /// Replaces the path; the request's query string is kept unless this one has a `?`.
    public var uri: String?
    /// Replaces the host (and port, if it has one).
    public var authority: String?
    /// Replaces the scheme; a changed scheme drops the request's port.
    public var scheme: String?
    /// Replaces the port.
    public var port: Int?
    /// 301 (default), 302, 303, 307 or 308.
    public var responseCode: Int?

    public init(uri: String? = nil, authority: String? = nil, scheme: String? = nil, port: Int? = nil,
                responseCode: Int? = nil) {
        self.uri = uri
        self.authority = authority
        self.scheme = scheme
        self.port = port
        self.responseCode = responseCode
    }
}

/// Istio's `headers` block: `request` and `response` changes, each `{set, add, remove}`.
public struct HeaderOperations: Codable, Sendable, Equatable {
    public var request: HeaderMutation?
    public var response: HeaderMutation?

    public init(request: HeaderMutation? = nil, response: HeaderMutation? = nil) {
        self.request = request
        self.response = response
    }
}

/// Applied in order: remove, set (replace), add (append).
public struct HeaderMutation: Codable, Sendable, Equatable {
    public var set: [String: String]?
    public var add: [String: String]?
    public var remove: [String]?

    public init(set: [String: String]? = nil, add: [String: String]? = nil, remove: [String]? = nil) {
        self.set = set
        self.add = add
        self.remove = remove
    }

    public var isEmpty: Bool { (set ?? [:]).isEmpty && (add ?? [:]).isEmpty && (remove ?? []).isEmpty }
}
