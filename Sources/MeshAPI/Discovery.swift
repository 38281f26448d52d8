/// Names both ends of the discovery stream agree on.
public enum Discovery {
    /// The gRPC method a proxy calls to subscribe (one bidirectional stream).
    public static let path = "/meshd.discovery.v1.AggregatedDiscoveryService/StreamResources"
    /// The type URL of every resource set on that stream.
    public static let typeURL = "type.meshd.io/meshd.Resources"
}
