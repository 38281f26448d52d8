/// Names both ends of the discovery stream agree on.
public enum Discovery {
    /// The gRPC method a proxy calls to subscribe (one bidirectional stream).
    public static let path = "/meshd.discovery.v1.AggregatedDiscoveryService/StreamResources"
    /// The type URL of every resource set on that stream.
    public static let typeURL = "type.meshd.io/meshd.Resources"
}

extension Discovery {
    /// The type URL of a certificate request and its answer on the same stream (Istio's
    /// CSR service, which istiod serves on the same port as discovery).
    public static let certificateTypeURL = "type.meshd.io/meshd.Certificate"
}
