/// Who asks for a configuration: a sidecar (outbound + inbound listeners) or a gateway
/// (a listener per Gateway server port whose selector matches its labels).
public struct ProxyIdentity: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case sidecar, gateway
    }

    public var kind: Kind
    public var name: String
    public var namespace: String
    public var labels: [String: String]
    /// The workload's service account (its identity; reported in Istio's metrics metadata).
    public var serviceAccount: String
    /// The address the listeners bind.
    public var address: String
    /// Sidecar: where the app sends outbound requests (Istio's 15001).
    public var outboundPort: Int
    /// Sidecar: where inbound requests arrive (Istio's 15006).
    public var inboundPort: Int
    /// Sidecar: the app's own port behind the inbound listener; nil means no inbound listener.
    public var appPort: Int?
    /// Gateway: server port → port to listen on; unlisted server ports listen on their own number.
    public var gatewayPorts: [Int: Int]

    public init(kind: Kind, name: String, namespace: String = "default", labels: [String: String] = [:],
                address: String? = nil, outboundPort: Int = 15001, inboundPort: Int = 15006, appPort: Int? = nil,
                gatewayPorts: [Int: Int] = [:], serviceAccount: String = "default") {
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.serviceAccount = serviceAccount
        self.address = address ?? (kind == .gateway ? "0.0.0.0" : "127.0.0.1")
        self.outboundPort = outboundPort
        self.inboundPort = inboundPort
        self.appPort = appPort
        self.gatewayPorts = gatewayPorts
    }

    public static func sidecar(name: String, namespace: String = "default", labels: [String: String] = [:],
                               outboundPort: Int = 15001, inboundPort: Int = 15006, appPort: Int? = nil,
                               address: String = "127.0.0.1", serviceAccount: String = "default") -> ProxyIdentity {
        ProxyIdentity(kind: .sidecar, name: name, namespace: namespace, labels: labels, address: address,
                      outboundPort: outboundPort, inboundPort: inboundPort, appPort: appPort,
                      serviceAccount: serviceAccount)
    }

    public static func gateway(name: String, namespace: String = "default", labels: [String: String] = [:],
                               ports: [Int: Int] = [:], address: String = "0.0.0.0",
                               serviceAccount: String = "default") -> ProxyIdentity {
        ProxyIdentity(kind: .gateway, name: name, namespace: namespace, labels: labels, address: address,
                      gatewayPorts: ports, serviceAccount: serviceAccount)
    }
}
