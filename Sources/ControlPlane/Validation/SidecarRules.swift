/// Sidecar rules: egress hosts in `namespace/dnsName` form.
enum SidecarRules {
    static func check(_ s: Sidecar, _ c: inout Issues) {
        if let sel = s.workloadSelector, sel.labels.isEmpty {
            c.add("spec.workloadSelector.labels", "at least one label is required")
        }
        for (i, e) in s.egress.enumerated() {
            let p = "spec.egress[\(i)]"
            if e.hosts.isEmpty { c.add(p + ".hosts", "at least one host is required") }
            for (j, h) in e.hosts.enumerated() {
                let parts = h.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2 else {
                    c.add("\(p).hosts[\(j)]", "\"\(h)\" must be of the form namespace/dnsName")
                    continue
                }
                if !["*", ".", "~"].contains(parts[0]) && !CommonRules.isNamespaceName(parts[0]) {
                    c.add("\(p).hosts[\(j)]", "\"\(parts[0])\" is not a namespace, \"*\", \".\" or \"~\"")
                }
                CommonRules.host(parts[1], "\(p).hosts[\(j)]", &c)
            }
            if let port = e.port { CommonRules.port(port.number, p + ".port.number", &c) }
        }
        for (i, l) in s.ingress.enumerated() {
            CommonRules.port(l.port?.number, "spec.ingress[\(i)].port.number", &c, required: true)
        }
    }
}
