import MeshAPI

/// networking.istio.io ServiceEntry.
public struct ServiceEntry: NodeDecodable, Equatable {
    public static let resolutions = ["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]

    public var hosts: [String]
    public var addresses: [String]
    public var ports: [PortSpec]
    public var location: String?
    public var resolution: String?
    public var endpoints: [WorkloadEntry]
    public var workloadSelector: WorkloadSelector?
    public var exportTo: [String]
    public var subjectAltNames: [String]

    init(_ r: ObjectReader) {
        hosts = r.strings("hosts")
        addresses = r.strings("addresses")
        ports = r.objects("ports")
        location = r.enumeration("location", ["MESH_EXTERNAL", "MESH_INTERNAL"])
        resolution = r.enumeration("resolution", Self.resolutions)
        endpoints = r.objects("endpoints")
        workloadSelector = r.object("workloadSelector")
        exportTo = r.strings("exportTo")
        subjectAltNames = r.strings("subjectAltNames")
    }
}

/// networking.istio.io WorkloadEntry (also a ServiceEntry's inline endpoint).
public struct WorkloadEntry: NodeDecodable, Equatable {
    public var address: String?
    public var ports: [String: Int]
    public var labels: [String: String]
    public var network: String?
    public var locality: String?
    public var weight: Int?
    public var serviceAccount: String?

    public init(address: String? = nil, ports: [String: Int] = [:], labels: [String: String] = [:],
                serviceAccount: String? = nil) {
        self.address = address
        self.ports = ports
        self.labels = labels
        self.serviceAccount = serviceAccount
    }

    init(_ r: ObjectReader) {
        address = r.string("address")
        ports = r.intMap("ports")
        labels = r.stringMap("labels")
        network = r.string("network")
        locality = r.string("locality")
        weight = r.int("weight")
        serviceAccount = r.string("serviceAccount")
    }
}

/// networking.istio.io WorkloadGroup: parsed and validated; meshd does not act on it yet.
public struct WorkloadGroup: NodeDecodable, Equatable {
    public struct Metadata: NodeDecodable, Equatable {
        public var labels: [String: String]
        public var annotations: [String: String]

        init(_ r: ObjectReader) {
            labels = r.stringMap("labels")
            annotations = r.stringMap("annotations")
        }
    }

    public var metadata: Metadata?
    public var template: WorkloadEntry?
    public var probe: JSONValue?

    init(_ r: ObjectReader) {
        metadata = r.object("metadata")
        template = r.object("template")
        probe = r.json("probe")
    }
}
