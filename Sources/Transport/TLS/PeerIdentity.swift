/// The mesh identity of a TLS peer, as Istio's authorization sees it.
///
/// Istio's `source.principal` / `principals` is the peer's SPIFFE ID without the
/// `spiffe://` scheme ("cluster.local/ns/default/sa/sleep"), and it exists only when the
/// peer's certificate was presented *and* verified (mutual TLS with the mesh root).
extension TLSConnectionFacts {
    /// The first `spiffe://` URI SAN of a verified peer certificate, in full; nil otherwise.
    public var peerSPIFFEID: String? {
        guard peerCertificateValidated, let certificate = peerCertificate else { return nil }
        return certificate.uriSANs.first { $0.hasPrefix("spiffe://") }
    }

    /// Istio's principal: `peerSPIFFEID` without "spiffe://"; nil without a verified SPIFFE peer.
    public var peerPrincipal: String? {
        peerSPIFFEID.map { String($0.dropFirst("spiffe://".count)) }
    }
}

extension ConnectionInfo {
    /// Istio's `source.principal` of the downstream peer ("td/ns/NS/sa/SA"), or nil on
    /// plaintext or without a verified SPIFFE client certificate.
    public var peerPrincipal: String? { tls?.peerPrincipal }

    /// The namespace inside `peerPrincipal` (Istio's `source.namespace`), when it has the
    /// `<td>/ns/<ns>/sa/<sa>` form.
    public var peerNamespace: String? {
        guard let parts = peerPrincipal?.split(separator: "/", omittingEmptySubsequences: false),
              parts.count == 5, parts[1] == "ns", parts[3] == "sa" else { return nil }
        return String(parts[2])
    }
}
