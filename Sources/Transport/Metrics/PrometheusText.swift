/// Prometheus text exposition format 0.0.4, the parts every exporter shares: the proxies'
/// admin pages and the control plane's /metrics write it, and the control plane reads it.
public enum PrometheusText {
    /// A label value escaped for the text format (backslash, double quote, newline).
    public static func escape(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// A sample value: integers without a fraction, others in Swift's shortest form.
    public static func number(_ v: Double) -> String {
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
