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
                if !names.insert(name).inserted { c.add(p + ".name", "duplicate subset names: \(name)") }
                // Istio's validateSubsetName: the name becomes part of cluster names.
                if !CommonRules.isNamespaceName(name) { c.add(p + ".name", "subset name is invalid: \(name)") }
            } else {
                c.add(p + ".name", "subset name cannot be empty")
            }
            CommonRules.selector(s.labels, p + ".labels", &c)
            if let tp = s.trafficPolicy { policy(tp, p + ".trafficPolicy", &c) }
        }
        CommonRules.exportTo(dr.exportTo, "spec.exportTo", &c)
        CommonRules.selector(dr.workloadSelector?.matchLabels, "spec.workloadSelector.matchLabels", &c)
    }

    static func policy(_ tp: TrafficPolicy, _ p: String, _ c: inout Issues) {
        if tp.settings.isEmpty && tp.portLevelSettings.isEmpty && tp.tunnel == nil && tp.proxyProtocol == nil && tp.retryBudget == nil {
            c.add(p, "traffic policy must have at least one field")
        }
        if tp.tunnel != nil && tp.proxyProtocol != nil {
            c.add(p + ".proxyProtocol", "tunnel and proxyProtocol must not be set together")
        }
        settings(tp.settings, p, &c)
        var ports = Set<Int>()
        for (i, pl) in tp.portLevelSettings.enumerated() {
            let pp = "\(p).portLevelSettings[\(i)]"
            if pl.port == nil { c.add(pp + ".port", "portTrafficPolicy must have valid port") }
            else { CommonRules.port(pl.port?.number, pp + ".port.number", &c, required: true) }
            if let n = pl.port?.number, !ports.insert(n).inserted { c.add(pp + ".port.number", "duplicate port \(n)") }
            if pl.settings.isEmpty { c.add(pp, "port traffic policy must have at least one field") }
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
            if (o.consecutiveLocalOriginFailures ?? 0) > 0 && o.splitExternalLocalOriginErrors != true {
                c.add(p + ".outlierDetection.consecutiveLocalOriginFailures",
                      "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")
            }
            if let m = o.maxEjectionPercent, !(0...100).contains(m) {
                c.add(p + ".outlierDetection.maxEjectionPercent", "must be in 0-100")
            }
            if let m = o.minHealthPercent, !(0...100).contains(m) {
                c.add(p + ".outlierDetection.minHealthPercent", "must be in 0-100")
            }
        }
        if let pool = s.connectionPool { connectionPool(pool, p + ".connectionPool", &c) }
        if let tcp = s.connectionPool?.tcp {
            if let m = tcp.maxConnections, m < 0 { c.add(p + ".connectionPool.tcp.maxConnections", "must not be negative") }
            if let t = tcp.connectTimeoutMs, t < 1 { c.add(p + ".connectionPool.tcp.connectTimeout", "must be at least 1ms") }
        }
    }

    /// Istio's validateConnectionPool for the HTTP settings (the TCP ones are checked above).
    static func connectionPool(_ pool: ConnectionPoolSettings, _ p: String, _ c: inout Issues) {
        if pool.tcp == nil && pool.http == nil { c.add(p, "connection pool must have at least one field") }
        guard let http = pool.http else { return }
        let hp = p + ".http"
        let counts: [(String, Int?, String)] = [
            ("http1MaxPendingRequests", http.http1MaxPendingRequests, "http1 max pending requests"),
            ("http2MaxRequests", http.http2MaxRequests, "http2 max requests"),
            ("maxRequestsPerConnection", http.maxRequestsPerConnection, "max requests per connection"),
            ("maxRetries", http.maxRetries, "max retries"),
            ("maxConcurrentStreams", http.maxConcurrentStreams, "max concurrent streams"),
        ]
        for (field, value, what) in counts where (value ?? 0) < 0 { c.add("\(hp).\(field)", "\(what) must be non-negative") }
        if let t = http.idleTimeoutMs, t < 1 { c.add(hp + ".idleTimeout", "duration must be at least 1ms") }
        if http.h2UpgradePolicy == "UPGRADE" && http.useClientProtocol == true {
            c.add(hp + ".useClientProtocol", "use client protocol must not be true when H2UpgradePolicy is UPGRADE")
        }
        if let keepAlive = http.http2KeepAlive {
            for field in ["interval", "timeout"] where keepAlive[field] == nil {
                c.add(hp + ".http2KeepAlive", "http2 keepalive \(field) is required")
            }
        }
    }
}

extension PolicySettings {
    /// No field set: Istio refuses such a (port) traffic policy.
    var isEmpty: Bool { loadBalancer == nil && connectionPool == nil && outlierDetection == nil && tls == nil }
}
