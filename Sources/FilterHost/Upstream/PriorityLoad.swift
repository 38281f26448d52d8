import MeshAPI

/// Envoy's priority load (Istio's locality failover): each priority level takes traffic up to
/// its healthy share times the overprovisioning factor 1.4, the rest spills to the next level;
/// when every level is degraded the loads are scaled up to 100 %. Also the per-endpoint
/// weights of Istio's locality `distribute`.
enum PriorityLoad {
    static let overprovisioningFactor = 1.4

    /// The level to use: by the loads, with `random` in 0..<1; nil when no level has a healthy endpoint.
    /// Levels in `excluding` (a retry's previous priorities) count as having no healthy endpoint;
    /// when that leaves none, the exclusion is dropped (Envoy's previous_priorities resets then).
    static func level(healthy: [Int: Int], total: [Int: Int], random: Double, excluding: Set<Int> = []) -> Int? {
        var loads = self.loads(healthy: healthy, total: total, excluding: excluding)
        if !excluding.isEmpty, !loads.contains(where: { $0.1 > 0 }) {
            loads = self.loads(healthy: healthy, total: total, excluding: [])
        }
        let sum = loads.reduce(0) { $0 + $1.1 }
        guard sum > 0 else { return nil }
        var point = random * sum
        for (p, load) in loads {
            if point < load { return p }
            point -= load
        }
        return loads.last { $0.1 > 0 }?.0
    }

    /// Each level's load: its health (overprovisioned, capped at 100) while the 100 % lasts.
    private static func loads(healthy: [Int: Int], total: [Int: Int], excluding: Set<Int>) -> [(Int, Double)] {
        var remaining = 100.0
        var loads: [(Int, Double)] = []
        for p in total.keys.sorted() where !excluding.contains(p) {
            guard let all = total[p], all > 0 else { continue }
            let health = min(100, overprovisioningFactor * 100 * Double(healthy[p] ?? 0) / Double(all))
            let load = min(remaining, health)
            remaining -= load
            loads.append((p, load))
        }
        return loads
    }

    /// An index of `weights` picked in proportion (zero weights never); nil when all are zero.
    static func weighted(_ weights: [Int], random: Double) -> Int? {
        let sum = weights.reduce(0) { $0 + max(0, $1) }
        guard sum > 0 else { return nil }
        var point = random * Double(sum)
        for (i, w) in weights.enumerated() where w > 0 {
            if point < Double(w) { return i }
            point -= Double(w)
        }
        return weights.lastIndex { $0 > 0 }
    }
}
