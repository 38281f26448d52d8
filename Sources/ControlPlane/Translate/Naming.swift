import MeshAPI

/// The names the translator gives what it makes (Envoy's and Istio's where they have one).
public enum Naming {
    /// Sidecar listeners and their route configs.
    public static let outbound = "outbound"
    public static let inbound = "inbound"

    /// `outbound|PORT|SUBSET|HOST`, as Envoy names Istio's clusters.
    public static func outboundCluster(host: String, port: Int, subset: String = "") -> String {
        "outbound|\(port)|\(subset)|\(host)"
    }

    /// `inbound|APPPORT||`: the sidecar's own app.
    public static func inboundCluster(appPort: Int) -> String { "inbound|\(appPort)||" }

    /// A sidecar's listener (and route config) for a Sidecar `egress[]` entry with a port.
    public static func egressListener(port: Int) -> String { "egress_\(port)" }

    /// A gateway's listener and route config for one server port.
    public static func gatewayListener(port: Int) -> String { "gateway_\(port)" }
    public static func gatewayRouteConfig(port: Int) -> String { "http.\(port)" }

    /// The virtual host made from a VirtualService: `vs:NAMESPACE/NAME` (on every port and
    /// proxy), so plugins targeting the VirtualService attach to it by name.
    public static func virtualHost(virtualService namespace: String, _ name: String) -> String { "vs:\(namespace)/\(name)" }

    /// The virtual host of a service port with no VirtualService: `HOST:PORT`.
    public static func virtualHost(host: String, port: Int) -> String { "\(host):\(port)" }

    /// A plugin's name: `NAMESPACE.NAME`, with `#2`, `#3`… when its targets need several attachments.
    public static func plugin(namespace: String, _ name: String, part: Int = 1) -> String {
        part == 1 ? "\(namespace).\(name)" : "\(namespace).\(name)#\(part)"
    }

    /// The route sent to a service when no VirtualService routes it, and the inbound route.
    public static let defaultRoute = "default"
    /// Istio's names for where hosts no service claims go.
    public static let passthroughCluster = "PassthroughCluster"
    public static let allowAny = "allow_any"
    public static let blockAll = "block_all"
}

/// One outbound cluster: a service host and port, optionally narrowed to a subset.
struct ClusterKey: Hashable, Comparable {
    var host: String
    var port: Int
    var subset: String

    var name: String { Naming.outboundCluster(host: host, port: port, subset: subset) }
    /// `outbound_.PORT_.SUBSET_.HOST`: the SNI a sidecar sends for this cluster.
    var sniName: String { IstioSNI.name(port: port, subset: subset, host: host) }

    static func < (a: ClusterKey, b: ClusterKey) -> Bool { a.name < b.name }
}
