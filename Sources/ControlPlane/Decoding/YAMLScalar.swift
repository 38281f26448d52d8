import MeshAPI
import Yams

/// Typed reads of YAML nodes, with the resolved YAML type checked the way a Kubernetes
/// schema would: `port: "80"` is a string, not a number, and is refused as one.
enum YAMLScalar {
    static func typeName(_ node: Node) -> String {
        switch node {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar:
            switch node.tagName {
            case .int: return "an integer"
            case .float: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            default: return "a string"
            }
        }
    }

    static func string(_ node: Node, path: String, _ ctx: DecodeContext) -> String? {
        guard case .scalar(let s) = node, [.str, .timestamp].contains(node.tagName) else {
            ctx.report(path, "wrong type: expected a string, got \(typeName(node))")
            return nil
        }
        return s.string
    }

    static func int(_ node: Node, path: String, _ ctx: DecodeContext) -> Int? {
        guard case .scalar = node, node.tagName == .int, let i = node.int else {
            ctx.report(path, "wrong type: expected an integer, got \(typeName(node))")
            return nil
        }
        return i
    }

    static func double(_ node: Node, path: String, _ ctx: DecodeContext) -> Double? {
        guard case .scalar(let s) = node, [.int, .float].contains(node.tagName),
              let d = node.float ?? Double(s.string) else {
            ctx.report(path, "wrong type: expected a number, got \(typeName(node))")
            return nil
        }
        return d
    }

    static func bool(_ node: Node, path: String, _ ctx: DecodeContext) -> Bool? {
        guard case .scalar = node, node.tagName == .bool, let b = node.bool else {
            ctx.report(path, "wrong type: expected a boolean, got \(typeName(node))")
            return nil
        }
        return b
    }

    static func json(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let s):
            switch node.tagName {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(s.string)
            case .int, .float: return (node.float ?? Double(s.string)).map(JSONValue.number) ?? .string(s.string)
            default: return .string(s.string)
            }
        case .sequence(let seq):
            return .array(seq.map(json))
        case .mapping(let m):
            var o: [String: JSONValue] = [:]
            for (k, v) in m { o[k.string ?? "\(k)"] = json(v) }
            return .object(o)
        case .alias:
            return .null
        }
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

extension Node {
    /// The resolved YAML type (`tag:yaml.org,2002:int`, …).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
