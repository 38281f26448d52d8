/// networking.istio.io Sidecar: meshd uses `workloadSelector` and `egress[].hosts` to narrow
/// what a sidecar receives; the other fields are parsed and validated.
public struct Sidecar: NodeDecodable, Equatable {
    public struct IngressListener: NodeDecodable, Equatable {
        public var port: PortSpec?
        public var bind: String?
        public var captureMode: String?
        public var defaultEndpoint: String?
        public var tls: ServerTLSSettings?
        public var connectionPool: ConnectionPoolSettings?

        init(_ r: ObjectReader) {
            port = r.object("port")
            bind = r.string("bind")
            captureMode = r.enumeration("captureMode", Sidecar.captureModes)
            defaultEndpoint = r.string("defaultEndpoint")
            tls = r.object("tls")
            connectionPool = r.object("connectionPool")
        }
    }

    public struct EgressListener: NodeDecodable, Equatable {
        public var port: PortSpec?
        public var bind: String?
        public var captureMode: String?
        public var hosts: [String]

        init(_ r: ObjectReader) {
            port = r.object("port")
            bind = r.string("bind")
            captureMode = r.enumeration("captureMode", Sidecar.captureModes)
            hosts = r.strings("hosts")
        }
    }

    public struct OutboundTrafficPolicy: NodeDecodable, Equatable {
        public var mode: String?
        public var egressProxy: Destination?

        init(_ r: ObjectReader) {
            mode = r.enumeration("mode", ["REGISTRY_ONLY", "ALLOW_ANY"])
            egressProxy = r.object("egressProxy")
        }
    }

    static let captureModes = ["DEFAULT", "IPTABLES", "NONE"]

    public var workloadSelector: WorkloadSelector?
    public var ingress: [IngressListener]
    public var egress: [EgressListener]
    public var outboundTrafficPolicy: OutboundTrafficPolicy?
    public var inboundConnectionPool: ConnectionPoolSettings?

    init(_ r: ObjectReader) {
        workloadSelector = r.object("workloadSelector")
        ingress = r.objects("ingress")
        egress = r.objects("egress")
        outboundTrafficPolicy = r.object("outboundTrafficPolicy")
        inboundConnectionPool = r.object("inboundConnectionPool")
    }
}
