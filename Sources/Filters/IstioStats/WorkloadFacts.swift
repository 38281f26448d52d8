#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import SwiftProtobuf

/// What Istio knows of one end of a request: the workload's name, namespace, labels, service
/// account and cluster. The local end's come from the control plane (the proxy's flags, as
/// the sidecar registered them); the peer's travel in Istio's metadata-exchange headers.
struct WorkloadFacts: Sendable, Hashable {
    /// The workload instance (Istio's NAME: the pod; meshd's `--name`).
    var name: String
    /// The workload (Istio's WORKLOAD_NAME: the deployment; meshd's `--name` too).
    var workload: String
    var namespace: String
    var labels: [String: String]
    var serviceAccount: String?
    /// Istio's CLUSTER_ID ("Kubernetes" by default).
    var cluster: String

    static let defaultCluster = "Kubernetes"

    /// Istio's label precedence for the canonical service and revision.
    var canonicalService: String {
        labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"] ?? labels["app"] ?? workload
    }
    var canonicalRevision: String {
        labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"] ?? labels["version"] ?? "latest"
    }
    var app: String? { labels["app"] ?? labels["app.kubernetes.io/name"] }
    var version: String? { labels["version"] ?? labels["app.kubernetes.io/version"] }
}

/// Istio's HTTP metadata exchange: `x-envoy-peer-metadata` holds base64 of a serialized
/// `google.protobuf.Struct` with the sender's node metadata (keys NAME, NAMESPACE, LABELS,
/// WORKLOAD_NAME, SERVICE_ACCOUNT, CLUSTER_ID, MESH_ID), `x-envoy-peer-metadata-id` the
/// sender's node id. Both are removed before the app sees them.
enum PeerMetadata {
    static let header = "x-envoy-peer-metadata"
    static let idHeader = "x-envoy-peer-metadata-id"
    /// A larger header is not decoded (a peer cannot make us parse megabytes per request).
    static let maxEncodedBytes = 8192

    static func encode(_ facts: WorkloadFacts, meshID: String = "cluster.local") -> String {
        var labels = Google_Protobuf_Struct()
        for (k, v) in facts.labels { labels.fields[k] = Google_Protobuf_Value(stringValue: v) }
        var s = Google_Protobuf_Struct()
        s.fields["NAME"] = Google_Protobuf_Value(stringValue: facts.name)
        s.fields["WORKLOAD_NAME"] = Google_Protobuf_Value(stringValue: facts.workload)
        s.fields["NAMESPACE"] = Google_Protobuf_Value(stringValue: facts.namespace)
        s.fields["CLUSTER_ID"] = Google_Protobuf_Value(stringValue: facts.cluster)
        s.fields["MESH_ID"] = Google_Protobuf_Value(stringValue: meshID)
        if let sa = facts.serviceAccount { s.fields["SERVICE_ACCOUNT"] = Google_Protobuf_Value(stringValue: sa) }
        s.fields["LABELS"] = Google_Protobuf_Value(structValue: labels)
        let bytes = (try? s.serializedBytes() as [UInt8]) ?? []
        return Data(bytes).base64EncodedString()
    }

    /// Decoded header values by their text. A peer proxy sends the same value on every
    /// request, and decoding it (base64, then a protobuf Struct) cost 7–8 % of a sidecar's CPU
    /// in the mesh benchmark. Shared by every loop (one uncontended lock per request);
    /// bounded: emptied when full, so values a client makes up cannot grow it.
    private static let decodedByValue = NIOLockedValueBox<[String: WorkloadFacts?]>([:])
    static let maxCachedValues = 256

    /// `decode`, remembered per value.
    static func decodeCached(_ value: String) -> WorkloadFacts? {
        guard value.utf8.count <= maxEncodedBytes else { return nil }
        if let known = decodedByValue.withLockedValue({ $0[value] }) { return known }
        let facts = decode(value)
        decodedByValue.withLockedValue { cache in
            if cache.count >= maxCachedValues { cache.removeAll(keepingCapacity: true) }
            cache.updateValue(facts, forKey: value)
        }
        return facts
    }

    /// The facts in a header value; nil when it is missing, too large or not a Struct.
    static func decode(_ value: String) -> WorkloadFacts? {
        guard value.utf8.count <= maxEncodedBytes, let data = Data(base64Encoded: value),
              let s = try? Google_Protobuf_Struct(serializedBytes: data) else { return nil }
        func string(_ key: String) -> String? {
            guard case .stringValue(let v)? = s.fields[key]?.kind, !v.isEmpty else { return nil }
            return v
        }
        var labels: [String: String] = [:]
        if case .structValue(let l)? = s.fields["LABELS"]?.kind {
            for (k, v) in l.fields { if case .stringValue(let text)? = v.kind { labels[k] = text } }
        }
        let name = string("NAME") ?? string("WORKLOAD_NAME")
        guard let name else { return nil }
        return WorkloadFacts(name: name, workload: string("WORKLOAD_NAME") ?? name,
                             namespace: string("NAMESPACE") ?? "unknown", labels: labels,
                             serviceAccount: string("SERVICE_ACCOUNT"),
                             cluster: string("CLUSTER_ID") ?? "unknown")
    }
}
