import MeshAPI

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

    /// Istio's validateWorkloadEntry. `standalone`: a WorkloadEntry resource, whose address
    /// may be a host name (a ServiceEntry's endpoints are checked against its resolution).
    static func check(workloadEntry e: WorkloadEntry, _ p: String, _ c: inout Issues, requireAddress: Bool,
                      standalone: Bool = false) {
        if requireAddress && (e.address ?? "").isEmpty && e.network == nil { c.add(p + ".address", "address is required") }
        if let address = e.address, !address.isEmpty {
            if address.hasPrefix("unix://") {
                if !e.ports.isEmpty { c.add(p + ".ports", "unix endpoint \(address) must not include ports") }
            } else if standalone, !isIP(address), CommonRules.fqdnError(address) != nil {
                c.add(p + ".address", "endpoint address \"\(address)\" is not a valid FQDN or an IP address")
            }
        }
        for (name, port) in e.ports.sorted(by: { $0.key < $1.key }) {
            if !CommonRules.isNamespaceName(name) { c.add("\(p).ports.\(name)", "invalid port name: \(name)") }
            CommonRules.port(port, "\(p).ports.\(name)", &c)
        }
        CommonRules.labels(e.labels, p + ".labels", &c)
        if let w = e.weight, w < 0 { c.add(p + ".weight", "weight must not be negative") }
    }

    /// Istio's ValidateWorkloadGroup: a template (whose address may be left out), valid
    /// metadata labels and a readiness probe with non-negative numbers and a usable method.
    static func check(_ wg: WorkloadGroup, _ c: inout Issues) {
        if let t = wg.template { check(workloadEntry: t, "spec.template", &c, requireAddress: false) }
        else { c.add("spec.template", "template is required") }
        if let labels = wg.metadata?.labels { CommonRules.labels(labels, "spec.metadata.labels", &c) }
        guard let probe = wg.probe else { return }
        let p = "spec.probe"
        for field in ["periodSeconds", "initialDelaySeconds", "timeoutSeconds", "successThreshold", "failureThreshold"] {
            if case .number(let n) = probe[field], n < 0 { c.add("\(p).\(field)", "\(field) must be non-negative") }
        }
        let methods = ["httpGet", "tcpSocket", "exec"].filter { probe[$0] != nil }
        guard methods.count == 1, let method = methods.first, let m = probe[method] else {
            return c.add(p, "exactly one of httpGet, tcpSocket or exec is required")
        }
        let mp = "\(p).\(method)"
        switch method {
        case "exec":
            if (m["command"]?.arrayValue ?? []).isEmpty { c.add(mp + ".command", "exec.command is required") }
        default:
            var port: Int?
            if case .number(let n) = m["port"] { port = Int(n) }
            if !(1...65535).contains(port ?? 0) { c.add(mp + ".port", "port number \(port ?? 0) must be in 1-65535") }
            if method == "httpGet", let scheme = m["scheme"]?.stringValue, !scheme.isEmpty, scheme != "HTTP", scheme != "HTTPS" {
                c.add(mp + ".scheme", "httpGet.scheme must be one of \"HTTPS\", \"HTTP\"")
            }
        }
    }

    static func isIP(_ s: String) -> Bool {
        let v4 = s.split(separator: ".", omittingEmptySubsequences: false)
        if v4.count == 4, v4.allSatisfy({ Int($0).map { (0...255).contains($0) } ?? false }) { return true }
        return s.contains(":") && s.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }
}
