/// ServiceEntry and WorkloadEntry rules.
enum ServiceEntryRules {
    static func check(_ se: ServiceEntry, _ c: inout Issues) {
        if se.hosts.isEmpty { c.add("spec.hosts", "at least one host is required") }
        for (i, h) in se.hosts.enumerated() { CommonRules.host(h, "spec.hosts[\(i)]", &c, allowBareWildcard: false) }
        var numbers = Set<Int>(), names = Set<String>()
        for (i, port) in se.ports.enumerated() {
            let p = "spec.ports[\(i)]"
            CommonRules.port(port.number, p + ".number", &c, required: true)
            CommonRules.port(port.targetPort, p + ".targetPort", &c)
            if let n = port.number, !numbers.insert(n).inserted { c.add(p + ".number", "duplicate port \(n)") }
            if let n = port.name, !n.isEmpty, !names.insert(n).inserted { c.add(p + ".name", "duplicate port name \"\(n)\"") }
            if let proto = port.protocol, !proto.isEmpty, !PortProtocol.names.contains(proto.uppercased()) {
                c.add(p + ".protocol", "unknown protocol \"\(proto)\" (one of \(PortProtocol.names.joined(separator: ", ")))")
            }
        }
        let resolution = se.resolution ?? "NONE"
        let cidr = se.addresses.contains { $0.contains("/") }
        if cidr && resolution != "NONE" && resolution != "STATIC" {
            c.add("spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")
        }
        if resolution == "NONE" && !se.endpoints.isEmpty {
            c.add("spec.endpoints", "no endpoints should be provided for resolution type none")
        }
        if resolution == "DNS_ROUND_ROBIN" && se.endpoints.count > 1 {
            c.add("spec.endpoints", "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN")
        }
        if !se.endpoints.isEmpty && se.workloadSelector != nil {
            c.add("spec", "only one of endpoints or workloadSelector may be set")
        }
        if resolution == "STATIC" && se.endpoints.isEmpty && se.workloadSelector == nil {
            c.add("spec.resolution", "STATIC resolution needs endpoints or a workloadSelector")
        }
        if (resolution == "DNS" || resolution == "DNS_ROUND_ROBIN") && se.endpoints.isEmpty,
           let wild = se.hosts.first(where: { $0.hasPrefix("*") }) {
            c.add("spec.hosts", "wildcard host \"\(wild)\" cannot be resolved by DNS without endpoints")
        }
        // An empty workloadSelector is allowed (Istio warns: it selects every workload of the namespace).
        if let sel = se.workloadSelector { CommonRules.selector(sel.labels, "spec.workloadSelector.labels", &c) }
        for (i, e) in se.endpoints.enumerated() {
            let p = "spec.endpoints[\(i)]"
            check(workloadEntry: e, p, &c, requireAddress: true)
            for name in e.ports.keys.sorted() where !names.contains(name) {
                c.add("\(p).ports.\(name)", "\"\(name)\" is not the name of a port of this ServiceEntry")
            }
            if resolution == "STATIC", let address = e.address, !isIP(address), !address.hasPrefix("unix://") {
                c.add(p + ".address", "STATIC resolution needs an IP address, got \"\(address)\"")
            }
        }
        CommonRules.exportTo(se.exportTo, "spec.exportTo", &c)
    }

    static func check(workloadEntry e: WorkloadEntry, _ p: String, _ c: inout Issues, requireAddress: Bool) {
        if requireAddress && (e.address ?? "").isEmpty && e.network == nil { c.add(p + ".address", "address is required") }
        for (name, port) in e.ports.sorted(by: { $0.key < $1.key }) { CommonRules.port(port, "\(p).ports.\(name)", &c) }
        if let w = e.weight, w < 0 { c.add(p + ".weight", "weight must not be negative") }
    }

    static func isIP(_ s: String) -> Bool {
        let v4 = s.split(separator: ".", omittingEmptySubsequences: false)
        if v4.count == 4, v4.allSatisfy({ Int($0).map { (0...255).contains($0) } ?? false }) { return true }
        return s.contains(":") && s.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }
}
