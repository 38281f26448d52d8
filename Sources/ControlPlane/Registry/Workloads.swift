/// A workload a sidecar registered at runtime. It behaves like a WorkloadEntry: ServiceEntries
/// in its namespace whose `workloadSelector` matches its labels send traffic to it.
public struct DynamicWorkload: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var address: String
    /// Port by name (the ServiceEntry port name), as in WorkloadEntry.
    public var ports: [String: Int]
    public var labels: [String: String]
    public var serviceAccount: String?
    /// The SPIFFE ID of the workload's certificate when its sidecar has one (Istio's
    /// `security.istio.io/tlsMode: istio` endpoints): peers then reach it with mutual TLS.
    public var meshIdentity: String?

    public init(name: String, namespace: String = "default", address: String, ports: [String: Int] = [:],
                labels: [String: String] = [:], serviceAccount: String? = nil, meshIdentity: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.address = address
        self.ports = ports
        self.labels = labels
        self.serviceAccount = serviceAccount
        self.meshIdentity = meshIdentity
    }

    /// `namespace/name`: registering the same id again replaces the workload.
    public var id: String { "\(namespace)/\(name)" }
}

/// A workload the registry knows: from a WorkloadEntry or registered at runtime.
public struct WorkloadInstance: Sendable, Hashable {
    public enum Origin: Sendable, Hashable {
        case workloadEntry(SourceLocation)
        case dynamic
    }

    public var name: String
    public var namespace: String
    public var address: String
    public var ports: [String: Int]
    public var labels: [String: String]
    public var serviceAccount: String?
    public var origin: Origin
    public var meshIdentity: String? = nil
    /// WorkloadEntry `locality`, else the topology labels.
    public var locality: Locality? = nil
    /// WorkloadEntry `network`, else the label `topology.istio.io/network` (nil: unknown).
    public var network: String? = nil

    public var id: String { "\(namespace)/\(name)" }
}

/// One upstream address of a service port.
public struct ServiceEndpoint: Sendable, Hashable, Comparable {
    public var address: String
    public var port: Int
    public var labels: [String: String]
    /// See `DynamicWorkload.meshIdentity`.
    public var meshIdentity: String? = nil
    public var locality: Locality? = nil
    /// The network the endpoint is on (Istio's multi-network); nil: unknown, reachable directly.
    public var network: String? = nil

    public static func < (a: ServiceEndpoint, b: ServiceEndpoint) -> Bool { (a.address, a.port) < (b.address, b.port) }
}

/// A port of a service.
public struct ServicePort: Sendable, Hashable, Comparable {
    public var number: Int
    public var name: String
    public var `protocol`: PortProtocol
    public var targetPort: Int?

    public static func < (a: ServicePort, b: ServicePort) -> Bool { a.number < b.number }
}

/// A service: one host (FQDN) with its ports, from a ServiceEntry.
public struct RegistryService: Sendable, Equatable {
    public var host: String
    /// The namespace of the ServiceEntry that defines it.
    public var namespace: String
    public var ports: [ServicePort]
    public var resolution: String
    public var exportTo: [String]
    /// `ServiceEntry/namespace/name`.
    public var source: String
    public var location: SourceLocation
    var selector: [String: String]?
    var inlineEndpoints: [WorkloadEntry]
    /// Set when the ServiceEntry is labelled `topology.istio.io/network`: the service is that
    /// network's gateway, on this port (`NetworkGateway`).
    var gatewayOf: GatewayRole? = nil

    struct GatewayRole: Sendable, Equatable {
        var network: String
        var port: Int
    }

    public var isWildcard: Bool { host.hasPrefix("*") }

    public func port(_ number: Int) -> ServicePort? { ports.first { $0.number == number } }
}
