/// A workload identity in Istio's SPIFFE form: `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
public struct SPIFFEIdentity: Sendable, Hashable, CustomStringConvertible {
    public var trustDomain: String
    public var namespace: String
    public var serviceAccount: String

    public init(trustDomain: String, namespace: String, serviceAccount: String) {
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    public var uri: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }
    public var description: String { uri }

    /// Istio's default service account when a workload names none.
    public static let defaultServiceAccount = "default"
}
