#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

extension AdminPages {
    /// `/certs` (Envoy's admin page of the same name, in meshd's shape): the workload
    /// certificate ("default", Istio's SDS name) and the root ("ROOTCA").
    static func certificates(_ issued: WorkloadCertificates.Issued?) -> String {
        func iso(_ seconds: Int64) -> String {
            Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(.iso8601)
        }
        var items: [[String: Any]] = []
        if let issued {
            items.append(["name": "default", "identity": issued.spiffeID ?? "", "serialNumber": issued.leaf.serialNumber,
                          "notBefore": iso(issued.leaf.validFrom), "notAfter": iso(issued.leaf.expiration),
                          "rootSHA256": issued.root.sha256Digest, "generation": issued.generation,
                          "sha256": issued.leaf.sha256Digest])
            items.append(["name": "ROOTCA", "identity": issued.root.subject, "serialNumber": issued.root.serialNumber,
                          "notBefore": iso(issued.root.validFrom), "notAfter": iso(issued.root.expiration),
                          "rootSHA256": issued.root.sha256Digest])
        }
        return JSONText.render(["certificates": items], pretty: true) + "\n"
    }
}
