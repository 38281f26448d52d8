import MeshAPI
import YAML

/// Typed reads of YAML nodes, with the resolved YAML type checked the way a Kubernetes
/// schema would: `port: "80"` is a string, not a number, and is refused as one.
enum YAMLScalar {
    static func typeName(_ node: Node) -> String {
        switch node {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .scalar:
            switch node.tag {
            case .int: return "an integer"
            case .float: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            default: return "a string"
            }
        }
    }

    static func string(_ node: Node, path: String, _ ctx: DecodeContext) -> String? {
        guard case .scalar(let s) = node, [.str, .timestamp].contains(node.tag) else {
            ctx.report(path, "wrong type: expected a string, got \(typeName(node))")
            return nil
        }
        return s.string
    }

    static func int(_ node: Node, path: String, _ ctx: DecodeContext) -> Int? {
        guard case .scalar = node, node.tag == .int, let i = node.int else {
            ctx.report(path, "wrong type: expected an integer, got \(typeName(node))")
            return nil
        }
        return i
    }

    static func double(_ node: Node, path: String, _ ctx: DecodeContext) -> Double? {
        guard case .scalar(let s) = node, [.int, .float].contains(node.tag),
              let d = node.float ?? Double(s.string) else {
            ctx.report(path, "wrong type: expected a number, got \(typeName(node))")
            return nil
        }
        return d
    }

    static func bool(_ node: Node, path: String, _ ctx: DecodeContext) -> Bool? {
        guard case .scalar = node, node.tag == .bool, let b = node.bool else {
            ctx.report(path, "wrong type: expected a boolean, got \(typeName(node))")
            return nil
        }
        return b
    }
}

/// Go-style durations as Istio accepts them: `7s`, `0.5s`, `100ms`, `1h2m3s`.
enum DurationText {
    static func milliseconds(_ text: String) -> Int? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        let units: [(String, Double)] = [("ms", 1), ("us", 0.001), ("µs", 0.001), ("ns", 0.000001),
                                         ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.0.count)
            total += value * unit.1
        }
        return Int(total.rounded())
    }
}
