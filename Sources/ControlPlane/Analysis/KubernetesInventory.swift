#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YAML

/// The Kubernetes objects of the analyzed files, read as the registry they describe (what
/// istiod would see through the API server): a Service with a selector is a service
/// `<name>.<ns>.svc.cluster.local` whose workloads are the Pods it selects; a Deployment's (or
/// StatefulSet's, DaemonSet's, ReplicaSet's, Job's) pod template labels, or a Pod's labels, are
/// a workload; a Secret holds a gateway's certificate. `meshd validate` skips these kinds (meshd
/// has no API server); `meshd analyze` uses them so that Istio-style inputs analyze unchanged.
public struct KubernetesInventory: Sendable, Equatable {
    public struct Port: Sendable, Equatable {
        public var name: String
        public var port: Int
        /// As written: a number or a container port name.
        public var targetPort: String?
        public var `protocol`: String
        public var appProtocol: String?
        public var line: Int
    }

    public struct Service: Sendable, Equatable {
        public var name: String
        public var namespace: String
        public var labels: [String: String]
        public var selector: [String: String]
        public var ports: [Port]
        public var type: String
        public var location: SourceLocation
        public var id: String { "Service/\(namespace)/\(name)" }
        public var host: String { "\(name).\(namespace).svc.\(HostNames.domainSuffix)" }
    }

    /// A Pod, or the pods a workload controller makes from its template.
    public struct Workload: Sendable, Equatable {
        public var kind: String
        public var name: String
        public var namespace: String
        public var podLabels: [String: String]
        public var location: SourceLocation
        public var id: String { "\(kind)/\(namespace)/\(name)" }
    }

    public struct Secret: Sendable, Equatable {
        public var name: String
        public var namespace: String
        /// Keys of `data` and `stringData`.
        public var keys: Set<String>
    }

    public var services: [Service] = []
    public var workloads: [Workload] = []
    public var secrets: [Secret] = []

    public init() {}

    static let workloadKinds: Set<String> = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]

    /// Whether a skipped document (`Kind/ns/name`) is one this inventory reads.
    public func reads(_ resourceID: String?) -> Bool {
        guard let id = resourceID else { return false }
        return services.contains { $0.id == id } || workloads.contains { $0.id == id }
            || secrets.contains { "Secret/\($0.namespace)/\($0.name)" == id }
    }

    /// Reads the Kubernetes objects of the given files and directories (as `ConfigStore.load(files:)` does).
    public static func load(files: [String]) -> KubernetesInventory {
        var inventory = KubernetesInventory()
        for path in files {
            var isDirectory = false
            let paths = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory
                ? ((try? ConfigStore.yamlFiles(under: path)) ?? []) : [path]
            for file in paths {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                inventory.add(yaml: String(decoding: data, as: UTF8.self), file: file)
            }
        }
        return inventory
    }

    public static func parse(yaml: String, file: String = "<input>") -> KubernetesInventory {
        var inventory = KubernetesInventory()
        inventory.add(yaml: yaml, file: file)
        return inventory
    }

    /// Adds the documents of one file; anything unreadable is the ConfigStore's to report.
    public mutating func add(yaml: String, file: String) {
        let parser = YAMLParser(yaml)
        while let root = try? parser.nextDocument() {
            add(root, file: file)
        }
    }

    private mutating func add(_ doc: Node, file: String) {
        guard let kind = doc["kind"]?.string, let apiVersion = doc["apiVersion"]?.string else { return }
        let meta = doc["metadata"]
        let name = meta?["name"]?.string ?? ""
        let namespace = meta?["namespace"]?.string ?? "default"
        let location = SourceLocation(file: file, line: doc.mark?.line ?? 1)
        let spec = doc["spec"]
        switch (apiVersion, kind) {
        case ("v1", "Service"):
            let ports = (spec?["ports"]?.sequence?.items ?? []).map { p in
                Port(name: p["name"]?.string ?? "", port: p["port"]?.int ?? 0, targetPort: p["targetPort"]?.string,
                            protocol: p["protocol"]?.string ?? "TCP", appProtocol: p["appProtocol"]?.string,
                            line: p["name"]?.mark?.line ?? p.mark?.line ?? location.line)
            }
            services.append(Service(name: name, namespace: namespace, labels: Self.strings(meta?["labels"]),
                                    selector: Self.strings(spec?["selector"]), ports: ports,
                                    type: spec?["type"]?.string ?? "ClusterIP", location: location))
        case ("v1", "Pod"):
            workloads.append(Workload(kind: kind, name: name, namespace: namespace, podLabels: Self.strings(meta?["labels"]),
                                      location: location))
        case (_, _) where Self.workloadKinds.contains(kind) && (apiVersion == "apps/v1" || apiVersion == "batch/v1"):
            let labels = Self.strings(spec?["template"]?["metadata"]?["labels"])
            workloads.append(Workload(kind: kind, name: name, namespace: namespace, podLabels: labels, location: location))
        case ("v1", "Secret"):
            var keys = Set(Self.strings(doc["data"]).keys)
            keys.formUnion(Self.strings(doc["stringData"]).keys)
            secrets.append(Secret(name: name, namespace: namespace, keys: keys))
        default:
            break
        }
    }

    private static func strings(_ node: Node?) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in node?.mapping ?? Node.Mapping([]) {
            if let key = k.string, let value = v.string { out[key] = value }
        }
        return out
    }

    /// The protocol Istio gives a Service port (its ConvertProtocol): UDP for UDP ports; else
    /// `appProtocol` (with Kubernetes' `kubernetes.io/h2c|ws|wss`) or the port name's prefix up to
    /// the first '-' (`grpc-web` whole); a well-known port (25, 53, 3306, 27017) with neither is TCP.
    /// nil: not a protocol Istio knows, so it sniffs.
    public static func portProtocol(_ p: Port) -> PortProtocol? {
        if p.protocol.uppercased() == "UDP" { return .udp }
        var name = p.name
        if let app = p.appProtocol {
            switch app {
            case "kubernetes.io/h2c": return .http2
            case "kubernetes.io/ws": return .http
            case "kubernetes.io/wss": return .https
            default: name = app
            }
        }
        if name.lowercased().hasPrefix("grpc-web") { return .grpcWeb }
        let prefix = name.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        if let known = PortProtocol(rawValue: prefix.uppercased()), known != .unspecified, known != .grpcWeb { return known }
        if ["http_proxy"].contains(prefix.lowercased()) { return .http }
        return [25, 53, 3306, 27017].contains(p.port) ? .tcp : nil
    }

    /// The registry's view of these Services and workloads (workload addresses are unknown: a
    /// file names none), for the analyzers that resolve hosts and selectors.
    func registryEntries() -> (services: [RegistryService], workloads: [WorkloadInstance]) {
        let services = self.services.map { s in
            RegistryService(host: s.host, namespace: s.namespace,
                            ports: s.ports.map {
                                ServicePort(number: $0.port, name: $0.name, protocol: Self.portProtocol($0) ?? .unspecified,
                                            targetPort: $0.targetPort.flatMap { Int($0) })
                            }.sorted(),
                            resolution: "STATIC", exportTo: [], source: s.id, location: s.location,
                            selector: s.selector.isEmpty ? nil : s.selector, inlineEndpoints: [])
        }
        let workloads = self.workloads.map {
            WorkloadInstance(name: $0.name, namespace: $0.namespace, address: "", ports: [:], labels: $0.podLabels,
                             serviceAccount: nil, origin: .workloadEntry($0.location))
        }
        return (services, workloads)
    }

    /// Workloads in `namespace` (any namespace when nil) whose pod labels contain `selector`.
    public func workloads(selectedBy selector: [String: String], namespace: String?) -> [Workload] {
        workloads.filter { ($0.namespace == namespace || namespace == nil) && $0.podLabels.matches(selector) }
    }
}
