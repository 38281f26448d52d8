import Transport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
            // Istio's wildcard label: `*`, or `*` / `*-` before a label (`*x`, `*-x`).
            if i == 0 && label.hasPrefix("*") {
                let rest = label.dropFirst(label.hasPrefix("*-") ? 2 : 1)
                if rest.isEmpty || isDNSLabel(String(rest)) { continue }
            }
            let ok = !label.isEmpty && label.count <= 63
                && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
            if !ok {
                return c.add(path, label.contains("*") ? "host \"\(h)\": a wildcard is only allowed as the leftmost label"
                                                       : "host \"\(h)\" is not a valid DNS name")
            }
        }
    }

    /// An RFC 1123 label as Istio checks it (letters of either case, digits, inner '-').
    static func isDNSLabel(_ s: String) -> Bool {
        guard (1...63).contains(s.count), let first = s.first, let last = s.last else { return false }
        return s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" } && first != "-" && last != "-"
    }

    /// Why `name` is not a DNS name (Istio's ValidateFQDN), or nil.
    static func fqdnError(_ name: String) -> String? {
        if name.isEmpty { return "empty domain name not allowed" }
        if name.count > 255 { return "domain name \"\(name)\" too long (max 255)" }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if let tld = parts.last, Int(tld) != nil {
            return "domain name \"\(name)\" invalid (top level domain \"\(tld)\" cannot be all-numeric)"
        }
        for (i, label) in parts.enumerated() where !(i == parts.count - 1 && label.isEmpty) && !isDNSLabel(label) {
            return "domain name \"\(name)\" invalid (label \"\(label)\" invalid)"
        }
        return nil
    }

    /// Why `name` is not a domain with at most a leading wildcard label (Istio's
    /// ValidateWildcardDomain), or nil.
    static func wildcardDomainError(_ name: String) -> String? {
        if name.isEmpty { return "empty domain name not allowed" }
        let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
        let first = parts[0]
        let rest = first.hasPrefix("*-") ? String(first.dropFirst(2)) : first.hasPrefix("*") ? String(first.dropFirst()) : first
        if !(first == "*" || isDNSLabel(rest)) { return "domain name \"\(name)\" invalid (label \"\(first)\" invalid)" }
        return parts.count > 1 ? fqdnError(parts[1]) : nil
    }

    static func exportTo(_ list: [String], _ path: String, _ c: inout Issues) {
        for (i, e) in list.enumerated() where e != "." && e != "*" && e != "~" && !isNamespaceName(e) {
            c.add("\(path)[\(i)]", "exportTo entry \"\(e)\" must be \".\", \"*\" or a namespace")
        }
    }

    /// Kubernetes label keys and values, as Istio's labels.Instance.Validate checks them:
    /// a key is `[prefix/]name`, the name up to 63 of letters, digits, '-', '_', '.' starting and
    /// ending alphanumeric; a value is empty or the same shape.
    static func labels(_ labels: [String: String], _ path: String, _ c: inout Issues) {
        func isName(_ s: Substring) -> Bool {
            guard (1...63).contains(s.count), let f = s.first, let l = s.last else { return false }
            let alnum: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber) }
            return alnum(f) && alnum(l) && s.allSatisfy { alnum($0) || "-_.".contains($0) }
        }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            let parts = k.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let keyOK = parts.count == 1 ? isName(parts[0]) : fqdnError(String(parts[0])) == nil && isName(parts[1])
            if !keyOK { c.add("\(path).\(k)", "invalid tag key: \"\(k)\"") }
            if !v.isEmpty && !isName(Substring(v)) { c.add("\(path).\(k)", "invalid tag value: \"\(v)\"") }
        }
    }

    static func selector(_ labels: [String: String]?, _ path: String, _ c: inout Issues) {
        guard let labels else { return }
        for (k, _) in labels.sorted(by: { $0.key < $1.key }) where k.isEmpty { c.add(path, "label names must not be empty") }
    }
}
