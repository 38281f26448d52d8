/// DestinationRule rules: a host, named unique subsets, coherent traffic policies.
enum DestinationRuleRules {
    static func check(_ dr: DestinationRule, _ c: inout Issues) {
        if let host = dr.host { CommonRules.host(host, "spec.host", &c, allowBareWildcard: false) }
        else { c.add("spec.host", "host is required") }
        if let tp = dr.trafficPolicy { policy(tp, "spec.trafficPolicy", &c) }
        var names = Set<String>()
        for (i, s) in dr.subsets.enumerated() {
            let p = "spec.subsets[\(i)]"
            if let name = s.name, !name.isEmpty {
                if !names.insert(name).inserted { c.add(p + ".name", "duplicate subset name \"\(name)\"") }
            } else {
                c.add(p + ".name", "subset name is required")
            }
            CommonRules.selector(s.labels, p + ".labels", &c)
            if let tp = s.trafficPolicy { policy(tp, p + ".trafficPolicy", &c) }
        }
        CommonRules.exportTo(dr.exportTo, "spec.exportTo", &c)
        CommonRules.selector(dr.workloadSelector?.matchLabels, "spec.workloadSelector.matchLabels", &c)
    }

    static func policy(_ tp: TrafficPolicy, _ p: String, _ c: inout Issues) {
        settings(tp.settings, p, &c)
        var ports = Set<Int>()
        for (i, pl) in tp.portLevelSettings.enumerated() {
            let pp = "\(p).portLevelSettings[\(i)]"
            CommonRules.port(pl.port?.number, pp + ".port.number", &c, required: true)
            if let n = pl.port?.number, !ports.insert(n).inserted { c.add(pp + ".port.number", "duplicate port \(n)") }
            settings(pl.settings, pp, &c)
        }
    }

    static func settings(_ s: PolicySettings, _ p: String, _ c: inout Issues) {
        if let lb = s.loadBalancer {
            if lb.simple != nil && lb.consistentHash != nil {
                c.add(p + ".loadBalancer", "only one of simple or consistentHash may be set")
            }
            if let h = lb.consistentHash {
                let keys = [h.httpHeaderName != nil, h.httpCookie != nil, h.useSourceIp == true, h.httpQueryParameterName != nil]
                if keys.filter({ $0 }).count != 1 {
                    c.add(p + ".loadBalancer.consistentHash",
                          "exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required")
                }
                if let cookie = h.httpCookie, (cookie.name ?? "").isEmpty {
                    c.add(p + ".loadBalancer.consistentHash.httpCookie.name", "name is required")
                }
                // Envoy refuses a maglev table whose size is not a prime.
                if let n = h.maglevTableSize, n != 0, !ClusterBuilder.isPrime(n) || n > 5_000_011 {
                    c.add(p + ".loadBalancer.consistentHash.maglev.tableSize", "must be a prime up to 5000011")
                }
            }
        }
        if let tls = s.tls, tls.mode == "MUTUAL", tls.credentialName == nil,
           tls.clientCertificate == nil || tls.privateKey == nil {
            c.add(p + ".tls", "clientCertificate and privateKey are required for MUTUAL (or credentialName)")
        }
        if let o = s.outlierDetection {
            if let m = o.maxEjectionPercent, !(0...100).contains(m) {
                c.add(p + ".outlierDetection.maxEjectionPercent", "must be in 0-100")
            }
            if let m = o.minHealthPercent, !(0...100).contains(m) {
                c.add(p + ".outlierDetection.minHealthPercent", "must be in 0-100")
            }
        }
        if let tcp = s.connectionPool?.tcp {
            if let m = tcp.maxConnections, m < 0 { c.add(p + ".connectionPool.tcp.maxConnections", "must not be negative") }
            if let t = tcp.connectTimeoutMs, t < 1 { c.add(p + ".connectionPool.tcp.connectTimeout", "must be at least 1ms") }
        }
    }
}
