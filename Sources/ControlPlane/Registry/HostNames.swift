/// Host names as Istio treats them: a name without dots is a Kubernetes short name,
/// `reviews` in namespace `default` being `reviews.default.svc.cluster.local`.
public enum HostNames {
    public static let domainSuffix = "cluster.local"

    /// The fully qualified form of `host` as written in a resource of `namespace`.
    public static func fqdn(_ host: String, namespace: String) -> String {
        let h = host.lowercased()
        if h == "*" || h.contains(".") { return h }
        return "\(h).\(namespace).svc.\(domainSuffix)"
    }

    /// `(name, namespace)` of `name.namespace.svc.cluster.local`.
    public static func kubernetesParts(_ fqdn: String) -> (name: String, namespace: String)? {
        let labels = fqdn.split(separator: ".")
        let suffix = ["svc"] + domainSuffix.split(separator: ".").map(String.init)
        guard labels.count == 2 + suffix.count, labels.dropFirst(2).map(String.init) == suffix else { return nil }
        return (String(labels[0]), String(labels[1]))
    }

    /// Whether a host pattern (`*`, `*.example.com` or a name) covers `host`.
    public static func matches(pattern: String, host: String) -> Bool {
        if pattern == "*" || pattern == host { return true }
        if pattern.hasPrefix("*") { return host.hasSuffix(pattern.dropFirst()) }
        return false
    }

    /// The narrower of two host patterns when one covers the other (`*` ∩ `a.com` = `a.com`), else nil.
    public static func intersection(_ a: String, _ b: String) -> String? {
        if matches(pattern: a, host: b) { return b }
        if matches(pattern: b, host: a) { return a }
        return nil
    }

    /// The names a client in `clientNamespace` may use for `fqdn`: the short name (same
    /// namespace only), `name.namespace`, `name.namespace.svc` and the FQDN itself.
    public static func aliases(of fqdn: String, clientNamespace: String) -> [String] {
        guard let (name, ns) = kubernetesParts(fqdn) else { return [fqdn] }
        var out: [String] = []
        if ns == clientNamespace { out.append(name) }
        out += ["\(name).\(ns)", "\(name).\(ns).svc", fqdn]
        return out
    }
}
