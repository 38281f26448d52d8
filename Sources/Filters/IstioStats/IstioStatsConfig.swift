import FilterHost
import MeshAPI

/// Config of `istio.stats` (Istio's stats filter), made by the control plane per proxy:
/// which end reports, and the local workload's facts.
///
///     {"reporter": "source" | "destination",
///      "workload": {"name": "reviews-v1", "namespace": "default", "labels": {"app": "reviews"},
///                   "serviceAccount": "reviews", "cluster": "Kubernetes", "nodeId": "sidecar~…"}}
struct IstioStatsConfig: Sendable {
    static let name = "istio.stats"

    let reporter: Reporter
    let local: WorkloadFacts
    let nodeID: String
    /// `x-envoy-peer-metadata` for this workload, encoded once.
    let encodedMetadata: String
    /// The metric series keys of the label sets seen so far.
    let series = IstioSeriesCache()

    init(_ config: JSONValue?) throws {
        guard let config, config.objectValue != nil else {
            throw ConfigError(path: "", reason: "\(Self.name) needs a config map with reporter and workload")
        }
        for key in config.objectValue!.keys where !["reporter", "workload"].contains(key) {
            throw ConfigError(path: key, reason: "unknown field")
        }
        guard let r = config["reporter"]?.stringValue, let reporter = Reporter(rawValue: r) else {
            throw ConfigError(path: "reporter", reason: "must be \"source\" or \"destination\"")
        }
        guard let w = config["workload"], w.objectValue != nil else {
            throw ConfigError(path: "workload", reason: "required: a map with name and namespace")
        }
        func string(_ key: String) throws -> String? {
            guard let v = w[key] else { return nil }
            guard let s = v.stringValue else { throw ConfigError(path: "workload.\(key)", reason: "must be a string") }
            return s
        }
        for key in w.objectValue!.keys where !["name", "namespace", "labels", "serviceAccount", "cluster", "nodeId"].contains(key) {
            throw ConfigError(path: "workload.\(key)", reason: "unknown field")
        }
        guard let name = try string("name"), !name.isEmpty else {
            throw ConfigError(path: "workload.name", reason: "required")
        }
        var labels: [String: String] = [:]
        for (k, v) in w["labels"]?.objectValue ?? [:] {
            guard let s = v.stringValue else { throw ConfigError(path: "workload.labels.\(k)", reason: "must be a string") }
            labels[k] = s
        }
        self.reporter = reporter
        local = WorkloadFacts(name: name, workload: name, namespace: try string("namespace") ?? "default",
                              labels: labels, serviceAccount: try string("serviceAccount"),
                              cluster: try string("cluster") ?? WorkloadFacts.defaultCluster)
        nodeID = try string("nodeId") ?? name
        encodedMetadata = PeerMetadata.encode(local)
    }
}

struct IstioStatsFactory: HTTPFilterFactory {
    static let name = IstioStatsConfig.name
    let config: IstioStatsConfig

    static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        IstioStatsFactory(config: try IstioStatsConfig(config))
    }

    func makeFilter(stream: StreamControl) -> HTTPFilter { IstioStatsFilter(config: config, stream: stream) }
}
