import MeshAPI

/// Istio's StringMatch: exactly one of `exact`, `prefix`, `regex` (RE2, whole-string).
/// An empty one (`{}`) means "present" where Istio allows it (headers, query parameters).
public struct StringMatch: NodeDecodable, Equatable {
    public var exact: String?
    public var prefix: String?
    public var regex: String?

    public init(exact: String? = nil, prefix: String? = nil, regex: String? = nil) {
        self.exact = exact
        self.prefix = prefix
        self.regex = regex
    }

    init(_ r: ObjectReader) {
        exact = r.string("exact")
        prefix = r.string("prefix")
        regex = r.string("regex")
    }

    public var kindCount: Int { [exact, prefix, regex].compactMap { $0 }.count }
    public var isEmpty: Bool { kindCount == 0 }
}

/// `port: {number}`.
public struct PortSelector: NodeDecodable, Equatable {
    public var number: Int?

    public init(number: Int? = nil) { self.number = number }

    init(_ r: ObjectReader) {
        number = r.int("number")
    }
}

/// A port as a Gateway server, ServiceEntry or Sidecar listener declares it.
public struct PortSpec: NodeDecodable, Equatable {
    public var number: Int?
    public var `protocol`: String?
    public var name: String?
    public var targetPort: Int?

    public init(number: Int? = nil, protocol: String? = nil, name: String? = nil, targetPort: Int? = nil) {
        self.number = number
        self.protocol = `protocol`
        self.name = name
        self.targetPort = targetPort
    }

    init(_ r: ObjectReader) {
        number = r.int("number")
        `protocol` = r.string("protocol")
        name = r.string("name")
        targetPort = r.int("targetPort")
    }

    /// Istio's protocol for the port: the declared one, or the one its name starts with (`http-web`).
    public var effectiveProtocol: PortProtocol {
        if let p = `protocol`, let known = PortProtocol(rawValue: p.uppercased()) { return known }
        let prefix = (name ?? "").split(separator: "-").first.map { $0.uppercased() } ?? ""
        return PortProtocol(rawValue: prefix) ?? .unspecified
    }
}

/// The protocols Istio names on ports.
public enum PortProtocol: String, Sendable, CaseIterable {
    case http = "HTTP", https = "HTTPS", grpc = "GRPC", grpcWeb = "GRPC-WEB", http2 = "HTTP2", mongo = "MONGO",
         tcp = "TCP", tls = "TLS", redis = "REDIS", mysql = "MYSQL", udp = "UDP", unspecified = ""

    public static let names: [String] = allCases.map(\.rawValue).filter { !$0.isEmpty }

    /// meshd proxies HTTP; ports without a protocol are treated as HTTP too (a Sidecar egress
    /// listener sniffs them).
    public var isHTTP: Bool { [.http, .http2, .grpc, .grpcWeb, .unspecified].contains(self) }
    /// Proxied as bytes, as Istio does (mongo, redis, mysql get no protocol filter here).
    public var isTCP: Bool { [.tcp, .tls, .https, .mongo, .redis, .mysql].contains(self) }
    /// Bytes routed by the ClientHello's SNI (`tls` routes; Istio's sidecars treat HTTPS so).
    public var isTLS: Bool { [.tls, .https].contains(self) }
    public var isHTTP2: Bool { [.http2, .grpc, .grpcWeb].contains(self) }
}

/// `percentage: {value}` (0–100).
public struct Percent: NodeDecodable, Equatable {
    public var value: Double?

    init(_ r: ObjectReader) {
        value = r.double("value")
    }
}

/// networking.istio.io's WorkloadSelector: `{labels}`.
public struct WorkloadSelector: NodeDecodable, Equatable {
    public var labels: [String: String]

    public init(labels: [String: String]) { self.labels = labels }

    init(_ r: ObjectReader) {
        labels = r.stringMap("labels")
    }
}

/// type.istio.io's WorkloadSelector: `{matchLabels}`.
public struct LabelSelector: NodeDecodable, Equatable {
    public var matchLabels: [String: String]

    public init(matchLabels: [String: String]) { self.matchLabels = matchLabels }

    init(_ r: ObjectReader) {
        matchLabels = r.stringMap("matchLabels")
    }
}

/// A policy's target: `{group, kind, name, namespace, sectionName}`.
public struct PolicyTargetReference: NodeDecodable, Equatable {
    public var group: String?
    public var kind: String?
    public var name: String?
    public var namespace: String?
    public var sectionName: String?

    public init(group: String? = nil, kind: String? = nil, name: String? = nil, namespace: String? = nil,
                sectionName: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.sectionName = sectionName
    }

    init(_ r: ObjectReader) {
        group = r.string("group")
        kind = r.string("kind")
        name = r.string("name")
        namespace = r.string("namespace")
        sectionName = r.string("sectionName")
    }
}

/// Istio's `headers` block: `{request, response}`, each `{set, add, remove}`.
public struct HeadersSpec: NodeDecodable, Equatable {
    public struct Operations: NodeDecodable, Equatable {
        public var set: [String: String]
        public var add: [String: String]
        public var remove: [String]

        init(_ r: ObjectReader) {
            set = r.stringMap("set")
            add = r.stringMap("add")
            remove = r.strings("remove")
        }

        var mutation: HeaderMutation? {
            let m = HeaderMutation(set: set.isEmpty ? nil : set, add: add.isEmpty ? nil : add,
                                   remove: remove.isEmpty ? nil : remove)
            return m.isEmpty ? nil : m
        }
    }

    public var request: Operations?
    public var response: Operations?

    init(_ r: ObjectReader) {
        request = r.object("request")
        response = r.object("response")
    }
}

extension Dictionary where Key == String, Value == String {
    /// Labels `self` contains all of `selector`'s pairs.
    func matches(_ selector: [String: String]) -> Bool {
        selector.allSatisfy { self[$0.key] == $0.value }
    }
}
