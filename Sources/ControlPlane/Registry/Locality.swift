/// Where a workload runs, as Istio writes it: `region/zone/subzone` (WorkloadEntry `locality`),
/// or Kubernetes' topology labels on a sidecar (`topology.kubernetes.io/region`,
/// `topology.kubernetes.io/zone`, `topology.istio.io/subzone`).
public struct Locality: Sendable, Hashable, CustomStringConvertible {
    public var region: String
    public var zone: String
    public var subzone: String

    public init(region: String, zone: String = "", subzone: String = "") {
        self.region = region
        self.zone = zone
        self.subzone = subzone
    }

    /// `region/zone/subzone`, trailing parts optional; nil when empty.
    public init?(_ text: String?) {
        guard let text, !text.isEmpty else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        self.init(region: parts[0], zone: parts.count > 1 ? parts[1] : "", subzone: parts.count > 2 ? parts[2] : "")
    }

    static let regionLabel = "topology.kubernetes.io/region"
    static let zoneLabel = "topology.kubernetes.io/zone"
    static let subzoneLabel = "topology.istio.io/subzone"

    /// From a workload's labels; nil without a region label.
    public static func of(labels: [String: String]) -> Locality? {
        guard let region = labels[regionLabel], !region.isEmpty else { return nil }
        return Locality(region: region, zone: labels[zoneLabel] ?? "", subzone: labels[subzoneLabel] ?? "")
    }

    public var description: String {
        subzone.isEmpty ? (zone.isEmpty ? region : "\(region)/\(zone)") : "\(region)/\(zone)/\(subzone)"
    }

    /// Istio's locality patterns in `distribute`: `region/zone/subzone`, with `*` for a whole level
    /// (`us-east/*`, `us-east/zone1/*`, `*`).
    public func matches(_ pattern: String) -> Bool {
        let want = pattern.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let have = [region, zone, subzone]
        for (i, part) in want.enumerated() {
            if part == "*" { return true }
            guard i < have.count, have[i] == part else { return false }
        }
        return true
    }
}
