/// A consistent-hash lookup over a cluster's endpoints, built as Envoy builds its ring hash
/// and maglev load balancers (equal weights): a request's hash picks an endpoint, and when
/// one of N endpoints leaves only about 1/N of the keys move.
enum ConsistentHashTable {
    /// Sorted ring points (hash, endpoint index); a key goes to the first point at or after it.
    case ring([(hash: UInt64, index: Int)])
    /// Maglev lookup table: a key goes to `table[key % size]`.
    case maglev([Int])

    static let defaultMinimumRingSize = 1024
    static let maximumRingSize = 8 * 1024 * 1024
    static let defaultMaglevTableSize = 65537

    /// Points hashed from "address:port_i" as Envoy's, but each endpoint gets
    /// `minimumRingSize` of them (Envoy splits it among the endpoints): an endpoint's points
    /// then do not change when others come or go, so only the leaver's keys move. The ring
    /// stays at most `maximumRingSize` points (past 8192 endpoints at the default size, each
    /// gets fewer).
    static func ring(hosts: [String], minimumRingSize: Int?) -> ConsistentHashTable {
        guard !hosts.isEmpty else { return .ring([]) }
        let perHost = max(1, min(minimumRingSize ?? defaultMinimumRingSize, maximumRingSize / hosts.count))
        var points: [(hash: UInt64, index: Int)] = []
        points.reserveCapacity(perHost * hosts.count)
        for (index, host) in hosts.enumerated() {
            for i in 0..<perHost { points.append((XXHash64.hash("\(host)_\(i)"), index)) }
        }
        points.sort { $0.hash < $1.hash }
        return .ring(points)
    }

    /// Maglev's permutation fill: endpoint i tries slots offset_i + j × skip_i in turn
    /// (offset and skip from xxHash64 of its name, seeds 0 and 1), one slot per turn, until
    /// the table is full. `tableSize` must be prime for every permutation to cover it.
    static func maglev(hosts: [String], tableSize: Int?) -> ConsistentHashTable {
        guard !hosts.isEmpty else { return .maglev([]) }
        let m = UInt64(tableSize ?? defaultMaglevTableSize)
        let offsets = hosts.map { XXHash64.hash($0, seed: 0) % m }
        let skips = hosts.map { XXHash64.hash($0, seed: 1) % (m - 1) + 1 }
        var next = [UInt64](repeating: 0, count: hosts.count)
        var table = [Int](repeating: -1, count: Int(m))
        var filled = 0
        while true {
            for i in hosts.indices {
                var slot = Int((offsets[i] &+ next[i] &* skips[i]) % m)
                while table[slot] >= 0 {
                    next[i] += 1
                    slot = Int((offsets[i] &+ next[i] &* skips[i]) % m)
                }
                table[slot] = i
                next[i] += 1
                filled += 1
                if filled == Int(m) { return .maglev(table) }
            }
        }
    }

    /// The endpoint index for a key's hash; nil when there is no endpoint.
    func pick(_ hash: UInt64) -> Int? {
        switch self {
        case .ring(let points):
            guard !points.isEmpty else { return nil }
            var lo = 0, hi = points.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if points[mid].hash < hash { lo = mid + 1 } else { hi = mid }
            }
            return points[lo == points.count ? 0 : lo].index
        case .maglev(let table):
            guard !table.isEmpty else { return nil }
            return table[Int(hash % UInt64(table.count))]
        }
    }
}
