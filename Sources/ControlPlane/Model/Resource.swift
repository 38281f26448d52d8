/// The resource kinds meshd reads, with the API group and versions each is accepted in.
public enum ResourceKind: String, Sendable, CaseIterable, Comparable {
    case virtualService = "VirtualService"
    case destinationRule = "DestinationRule"
    case gateway = "Gateway"
    case serviceEntry = "ServiceEntry"
    case workloadEntry = "WorkloadEntry"
    case workloadGroup = "WorkloadGroup"
    case sidecar = "Sidecar"
    case peerAuthentication = "PeerAuthentication"
    case requestAuthentication = "RequestAuthentication"
    case authorizationPolicy = "AuthorizationPolicy"
    case trafficExtension = "TrafficExtension"
    case luaPlugin = "LuaPlugin"
    case telemetry = "Telemetry"

    public var group: String {
        switch self {
        case .virtualService, .destinationRule, .gateway, .serviceEntry, .workloadEntry, .workloadGroup, .sidecar:
            "networking.istio.io"
        case .peerAuthentication, .requestAuthentication, .authorizationPolicy:
            "security.istio.io"
        case .trafficExtension:
            "extensions.istio.io"
        case .luaPlugin:
            "extensions.meshd.io"
        case .telemetry:
            "telemetry.istio.io"
        }
    }

    public var versions: [String] {
        switch group {
        case "networking.istio.io": ["v1", "v1beta1", "v1alpha3"]
        case "security.istio.io": ["v1", "v1beta1"]
        case "telemetry.istio.io": ["v1", "v1alpha1"]
        default: ["v1alpha1"]
        }
    }

    public var apiVersions: [String] { versions.map { "\(group)/\($0)" } }

    public static func < (a: ResourceKind, b: ResourceKind) -> Bool { a.rawValue < b.rawValue }
}

/// Where a resource's document starts.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool { (a.file, a.line) < (b.file, b.line) }
}

public struct ResourceMeta: Sendable, Equatable {
    public var name: String
    /// "default" when the document does not say.
    public var namespace: String
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(name: String, namespace: String = "default", labels: [String: String] = [:],
                annotations: [String: String] = [:]) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }
}

/// A resource's typed spec.
public enum ResourceSpec: Sendable, Equatable {
    case virtualService(VirtualService)
    case destinationRule(DestinationRule)
    case gateway(Gateway)
    case serviceEntry(ServiceEntry)
    case workloadEntry(WorkloadEntry)
    case workloadGroup(WorkloadGroup)
    case sidecar(Sidecar)
    case peerAuthentication(PeerAuthentication)
    case requestAuthentication(RequestAuthentication)
    case authorizationPolicy(AuthorizationPolicy)
    case trafficExtension(TrafficExtension)
    case luaPlugin(LuaPluginSpec)
    case telemetry(Telemetry)
}

/// One loaded document: what it is, where it came from, and what was wrong with its fields.
public struct Resource: Sendable, Equatable {
    public var apiVersion: String
    public var kind: ResourceKind
    public var meta: ResourceMeta
    public var location: SourceLocation
    public var spec: ResourceSpec
    /// Unknown fields, wrong types, unreadable plugin sources: reported by the Validator.
    public var issues: [FieldIssue]
    /// Every field of the document, in document order, with its line.
    public var fields: [FieldPosition]

    public init(apiVersion: String, kind: ResourceKind, meta: ResourceMeta, location: SourceLocation,
                spec: ResourceSpec, issues: [FieldIssue] = [], fields: [FieldPosition] = []) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.meta = meta
        self.location = location
        self.spec = spec
        self.issues = issues
        self.fields = fields
    }

    /// `Kind/namespace/name`.
    public var id: String { "\(kind.rawValue)/\(meta.namespace)/\(meta.name)" }

    /// Where the field at `path` is: its own line, else its nearest present ancestor's (a
    /// missing field is reported where its parent is), else where the document starts.
    public func location(of path: String) -> SourceLocation {
        var p = Substring(path)
        while !p.isEmpty {
            if let f = fields.first(where: { $0.path == p }), f.line > 0 {
                return SourceLocation(file: location.file, line: f.line)
            }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            p = p[..<cut]
        }
        return location
    }
}

/// A resource's spec with its metadata, for typed access (`store.virtualServices`).
public struct Config<Spec: Sendable & Equatable>: Sendable, Equatable {
    public var kind: ResourceKind
    public var meta: ResourceMeta
    public var location: SourceLocation
    public var spec: Spec

    public var name: String { meta.name }
    public var namespace: String { meta.namespace }
    /// `Kind/namespace/name`.
    public var id: String { "\(kind.rawValue)/\(meta.namespace)/\(meta.name)" }
}
