import Transport
import Foundation

/// Collects a resource's validation issues.
struct Issues {
    var list: [FieldIssue] = []

    mutating func add(_ path: String, _ reason: String) {
        list.append(FieldIssue(path: path, reason: reason))
    }
}

/// Checks shared by several kinds: names, hosts, ports, regexes, string matches.
enum CommonRules {
    static func port(_ n: Int?, _ path: String, _ c: inout Issues, required: Bool = false) {
        guard let n else {
            if required { c.add(path, "port number is required") }
            return
        }
        if !(1...65535).contains(n) { c.add(path, "port number \(n) must be in 1-65535") }
    }

    /// A regular expression the proxies will compile: RE2 syntax, and a program no bigger than
    /// their limit (Envoy's default, 100), so a pattern they would refuse is refused here first.
    static func regex(_ pattern: String, _ path: String, _ c: inout Issues) {
        if let reason = regexError(pattern) { c.add(path, reason) }
    }

    static func regexError(_ pattern: String) -> String? {
        do {
            _ = try RE2Regex(pattern)
            return nil
        } catch {
            return error.description
        }
    }

    static func stringMatch(_ m: StringMatch, _ path: String, _ c: inout Issues, allowEmpty: Bool) {
        if m.kindCount > 1 { c.add(path, "only one of exact, prefix, regex may be set") }
        if m.kindCount == 0 && !allowEmpty { c.add(path, "one of exact, prefix, regex is required") }
        if let r = m.regex { regex(r, path + ".regex", &c) }
    }

    static func percent(_ p: Percent?, _ path: String, _ c: inout Issues) {
        guard let v = p?.value else { return }
        if !(0...100).contains(v) { c.add(path + ".value", "percentage \(v) must be in 0-100") }
    }

    /// An RFC 1123 label, as Kubernetes names namespaces.
    static func isNamespaceName(_ s: String) -> Bool {
        guard (1...63).contains(s.count), let first = s.first, let last = s.last else { return false }
        let ok = s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
        return ok && first != "-" && last != "-"
    }

    /// A host name Istio accepts: DNS labels, optionally a leading `*` label, or `*` alone.
    static func host(_ h: String, _ path: String, _ c: inout Issues, allowBareWildcard: Bool = true) {
        if h.isEmpty { return c.add(path, "host must not be empty") }
        if h == "*" {
            if !allowBareWildcard { c.add(path, "host \"*\" is not allowed here") }
            return
        }
        let labels = h.split(separator: ".", omittingEmptySubsequences: false)
        for (i, label) in labels.enumerated() {
            if label == "*" && i == 0 { continue }
            let ok = !label.isEmpty && label.count <= 63
                && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
            if !ok {
                return c.add(path, label.contains("*") ? "host \"\(h)\": a wildcard is only allowed as the leftmost label"
                                                       : "host \"\(h)\" is not a valid DNS name")
            }
        }
    }

    static func exportTo(_ list: [String], _ path: String, _ c: inout Issues) {
        for (i, e) in list.enumerated() where e != "." && e != "*" && e != "~" && !isNamespaceName(e) {
            c.add("\(path)[\(i)]", "exportTo entry \"\(e)\" must be \".\", \"*\" or a namespace")
        }
    }

    static func selector(_ labels: [String: String]?, _ path: String, _ c: inout Issues) {
        guard let labels else { return }
        for (k, _) in labels.sorted(by: { $0.key < $1.key }) where k.isEmpty { c.add(path, "label names must not be empty") }
    }
}
