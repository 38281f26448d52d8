/// Istio's multi-network mesh: a workload's network is its WorkloadEntry `network` or its
/// label `topology.istio.io/network`; a proxy's is its own label. Endpoints on another network
/// are reached through that network's gateway (an east-west gateway with an AUTO_PASSTHROUGH
/// server): the gateway's address replaces them, the mTLS stays end to end. A network's
/// gateways are the endpoints of ServiceEntries labelled `topology.istio.io/network` (as
/// Istio's Kubernetes registry finds them on Services), on port 15443 unless the annotation
/// `networking.istio.io/gatewayPort` names another.
public struct NetworkGateway: Sendable, Hashable {
    public var network: String
    public var address: String
    public var port: Int

    public static let networkLabel = "topology.istio.io/network"
    public static let portAnnotation = "networking.istio.io/gatewayPort"
    public static let defaultPort = 15443

    /// A declared network, else the label's; nil when neither names one.
    static func network(_ declared: String?, labels: [String: String]) -> String? {
        if let declared, !declared.isEmpty { return declared }
        return labels[networkLabel].flatMap { $0.isEmpty ? nil : $0 }
    }
}

extension Registry {
    /// The gateways of `network`: each endpoint of the gateway port of its gateway services.
    public func gateways(of network: String) -> [NetworkGateway] {
        services.filter { $0.gatewayOf?.network == network }.flatMap { service -> [NetworkGateway] in
            guard let number = service.gatewayOf?.port, let port = service.port(number) else { return [] }
            return endpoints(of: service, port: port).map { NetworkGateway(network: network, address: $0.address, port: $0.port) }
        }
    }

    /// What a proxy on `proxyNetwork` can reach of `endpoints`: those on its network, or on no
    /// known one, as they are; a sidecar on another network through each gateway of that
    /// network (its identity kept, so mTLS verifies the workload behind the gateway); the rest
    /// of other networks not at all (Istio drops them too). Without a proxy network, all as they are.
    func reachable(_ endpoints: [ServiceEndpoint], from proxyNetwork: String?) -> [ServiceEndpoint] {
        guard let proxyNetwork else { return endpoints }
        var out = Set<ServiceEndpoint>()
        var gatewaysByNetwork: [String: [NetworkGateway]] = [:]
        for e in endpoints {
            guard let network = e.network, network != proxyNetwork else {
                out.insert(e)
                continue
            }
            guard e.meshIdentity != nil else { continue }
            let gateways = gatewaysByNetwork[network] ?? self.gateways(of: network)
            gatewaysByNetwork[network] = gateways
            for g in gateways {
                var via = e
                via.address = g.address
                via.port = g.port
                via.network = nil
                out.insert(via)
            }
        }
        return out.sorted()
    }
}
