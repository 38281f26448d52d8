import MeshAPI
import Transport

/// How one upstream connection is secured: the cluster's own TLS settings (DestinationRule
/// SIMPLE / MUTUAL / ISTIO_MUTUAL) win; without them an endpoint that is a mesh sidecar gets
/// mutual TLS with this proxy's workload certificate (Istio's auto mTLS), verified by its
/// SPIFFE ID; anything else is plaintext. Mesh mTLS sends the cluster name in Istio's SNI form
/// (`outbound_.9080_._.reviews.default.svc.cluster.local`) unless the rule names an SNI, as
/// Istio's sidecars do: an AUTO_PASSTHROUGH gateway routes on it.
struct UpstreamTLSPlan {
    var context: TLSClientContext?
    var serverName: String?
    var subjectAltNames: [String] = []
    /// Mesh mTLS identifies peers by SPIFFE ID and the mesh root, never by host name.
    var verifyHostName = true

    struct NoWorkloadCertificate: Error, CustomStringConvertible {
        var description: String { "ISTIO_MUTUAL needs this proxy's workload certificate, and it has none (no --token-file, or not issued yet)" }
    }

    init(cluster: Cluster, endpoint: Endpoint, http2: Bool, certificates: WorkloadCertificates = .shared) throws {
        try self.init(cluster: cluster, endpoint: endpoint, application: http2 ? .http2 : .http1, certificates: certificates)
    }

    /// `application` picks the mesh ALPN (bytes: Istio's TCP names); the cluster's own TLS
    /// speaks HTTP/1.1's or none.
    init(cluster: Cluster, endpoint: Endpoint, application: MeshApplication,
         certificates: WorkloadCertificates = .shared) throws {
        let http2 = application == .http2
        if let tls = cluster.tls {
            serverName = tls.sni
            if tls.istioMutual == true {
                serverName = tls.sni ?? IstioSNI.name(forCluster: cluster.name)
                guard let context = certificates.clientContext(for: application) else { throw NoWorkloadCertificate() }
                self.context = context
                verifyHostName = false
                subjectAltNames = tls.subjectAltNames ?? endpoint.meshIdentity.map { [$0] } ?? []
            } else {
                context = try UpstreamTLSContexts.shared.context(for: tls, http2: http2)
                subjectAltNames = tls.subjectAltNames ?? []
            }
        } else if let identity = endpoint.meshIdentity, let context = certificates.clientContext(for: application) {
            self.context = context
            serverName = IstioSNI.name(forCluster: cluster.name)
            verifyHostName = false
            subjectAltNames = [identity]
        }
    }
}
