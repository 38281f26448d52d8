import MeshAPI

/// Istio's locality load balancing, done as Istio does it, per proxy (the priorities depend on
/// where the proxy is): `distribute` gives each endpoint a weight from the share of its
/// locality; otherwise, when the cluster has outlier detection (without it nothing would
/// ever fail over), endpoints get Envoy priorities by how near they are: 0 same
/// region/zone/subzone, 1 same zone, 2 same region, then the `failover` target region, then
/// the rest. Without the proxy's locality, or with `enabled: false`, every endpoint is alike.
enum LocalityLoadBalancing {
    static func apply(_ setting: LocalityLbSetting?, outlierDetection: Bool, proxy: Locality?,
                      endpoints: [(Endpoint, Locality?)]) -> [Endpoint] {
        guard let proxy, setting?.enabled ?? true else { return endpoints.map(\.0) }
        if let rule = setting?.distribute.first(where: { $0.from.map(proxy.matches) ?? false }) {
            return distribute(rule, endpoints)
        }
        guard outlierDetection else { return endpoints.map(\.0) }
        let failoverTarget = setting?.failover.first { $0.from == proxy.region }?.to
        return endpoints.map { endpoint, locality in
            var e = endpoint
            e.priority = priority(proxy, locality, failoverTarget: failoverTarget)
            return e
        }
    }

    static func priority(_ proxy: Locality, _ endpoint: Locality?, failoverTarget: String?) -> Int {
        guard let endpoint else { return failoverTarget == nil ? 3 : 4 }
        if endpoint.region == proxy.region {
            if endpoint.zone == proxy.zone { return endpoint.subzone == proxy.subzone ? 0 : 1 }
            return 2
        }
        if let failoverTarget { return endpoint.region == failoverTarget ? 3 : 4 }
        return 3
    }

    /// Each `to` pattern's percent shared by the endpoints whose locality it is the first to
    /// match; endpoints no pattern names get no traffic (weight 0), as in Envoy.
    static func distribute(_ rule: LocalityLbSetting.Distribute, _ endpoints: [(Endpoint, Locality?)]) -> [Endpoint] {
        let patterns = rule.to.keys.sorted { $0.count > $1.count }  // the most specific pattern first
        func pattern(_ l: Locality?) -> String? { l.flatMap { l in patterns.first { l.matches($0) } } }
        var members: [String: Int] = [:]
        for (_, l) in endpoints { if let p = pattern(l) { members[p, default: 0] += 1 } }
        return endpoints.map { endpoint, locality in
            var e = endpoint
            if let p = pattern(locality), let share = rule.to[p], let n = members[p] {
                e.weight = share * 1000 / n
            } else {
                e.weight = 0
            }
            return e
        }
    }
}
