import YAML

extension JSONValue {
    /// Free-form YAML content as JSON: scalars by their resolved YAML type (`80` a number,
    /// `"80"` a string, `yes` a boolean), map keys by their text.
    public init(yaml node: Node) {
        switch node {
        case .scalar(let s):
            switch s.tag {
            case .null: self = .null
            case .bool: self = node.bool.map(JSONValue.bool) ?? .string(s.string)
            case .int, .float: self = node.float.map(JSONValue.number) ?? .string(s.string)
            default: self = .string(s.string)
            }
        case .sequence(let seq):
            self = .array(seq.map(JSONValue.init(yaml:)))
        case .mapping(let m):
            var o: [String: JSONValue] = [:]
            for (k, v) in m { o[k.string ?? ""] = JSONValue(yaml: v) }
            self = .object(o)
        }
    }
}
