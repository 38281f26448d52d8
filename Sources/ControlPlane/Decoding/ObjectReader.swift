import MeshAPI
import YAML

/// A problem found while reading a resource: the field path (`spec.http[0].route`) and why.
public struct FieldIssue: Sendable, Hashable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// A field present in a document: its path (`spec.http[0].route`), the same path with list
/// indexes as `[]` and user-chosen map keys as `{}` (`spec.http[].match[].headers{}.exact`,
/// what the per-kind field tables name), and the line of its key.
public struct FieldPosition: Sendable, Hashable {
    public var path: String
    public var pattern: String
    public var line: Int
}

/// Collects the issues of one document while its models are read, and where its fields are.
final class DecodeContext {
    var issues: [FieldIssue] = []
    var fields: [FieldPosition] = []

    func report(_ path: String, _ reason: String) {
        issues.append(FieldIssue(path: path, reason: reason))
    }
}

/// A model read from a YAML mapping. Every key the initializer asks for is a known field;
/// whatever else the mapping holds is reported as unknown when the reader finishes.
protocol NodeDecodable: Sendable {
    init(_ r: ObjectReader)
}

/// Reads one YAML mapping strictly: typed accessors report wrong types with the field path,
/// and `finish()` reports the keys nobody asked for.
final class ObjectReader {
    let ctx: DecodeContext
    let path: String
    /// `path` with list indexes as `[]` and map keys as `{}`.
    let pattern: String
    private var entries: [(key: String, value: Node)] = []
    private var asked: [String] = []

    init?(_ node: Node, path: String, pattern: String? = nil, ctx: DecodeContext) {
        self.ctx = ctx
        self.path = path
        self.pattern = pattern ?? path
        guard case .mapping(let mapping) = node else {
            ctx.report(path.isEmpty ? "(document)" : path, "wrong type: expected a map, got \(YAMLScalar.typeName(node))")
            return nil
        }
        var seen = Set<String>()
        for (k, v) in mapping {
            guard case .scalar(let key) = k else {
                ctx.report(path, "map keys must be strings")
                continue
            }
            guard seen.insert(key.string).inserted else {
                ctx.report(child(key.string), "duplicate key \"\(key.string)\"")
                continue
            }
            entries.append((key.string, v))
            let line = k.mark?.line ?? v.mark?.line ?? 0
            ctx.fields.append(FieldPosition(path: child(key.string), pattern: childPattern(key.string), line: line))
        }
    }

    var keys: [String] { entries.map(\.key) }

    func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
    func childPattern(_ key: String) -> String { pattern.isEmpty ? key : pattern + "." + key }

    /// The value under `key`, nil when absent or null. Marks `key` as a known field.
    func node(_ key: String) -> Node? {
        asked.append(key)
        guard let node = entries.first(where: { $0.key == key })?.value else { return nil }
        if case .scalar = node, node.isNull { return nil }
        return node
    }

    /// Reports every key the model did not read.
    func finish() {
        let known = Set(asked)
        for (key, _) in entries where !known.contains(key) {
            var reason = "unknown field \"\(key)\""
            if let near = Spelling.suggestion(for: key, among: asked) { reason += " (did you mean \"\(near)\"?)" }
            ctx.report(child(key), reason)
        }
    }

    // MARK: scalars

    func string(_ key: String) -> String? {
        node(key).flatMap { YAMLScalar.string($0, path: child(key), ctx) }
    }

    func int(_ key: String) -> Int? {
        node(key).flatMap { YAMLScalar.int($0, path: child(key), ctx) }
    }

    func double(_ key: String) -> Double? {
        node(key).flatMap { YAMLScalar.double($0, path: child(key), ctx) }
    }

    func bool(_ key: String) -> Bool? {
        node(key).flatMap { YAMLScalar.bool($0, path: child(key), ctx) }
    }

    /// A duration such as `7s`, `0.5s`, `100ms` or `1m30s`, in milliseconds.
    func durationMs(_ key: String) -> Int? {
        guard let s = string(key) else { return nil }
        guard let ms = DurationText.milliseconds(s) else {
            ctx.report(child(key), "invalid duration \"\(s)\" (expected e.g. 500ms, 7s, 1m)")
            return nil
        }
        return ms
    }

    /// A string that must be one of `allowed` (Istio's enum names).
    func enumeration(_ key: String, _ allowed: [String]) -> String? {
        guard let s = string(key) else { return nil }
        guard allowed.contains(s) else {
            ctx.report(child(key), "unknown value \"\(s)\" (one of \(allowed.joined(separator: ", ")))")
            return nil
        }
        return s
    }

    // MARK: collections

    func strings(_ key: String) -> [String] {
        list(key) { n, p in YAMLScalar.string(n, path: p, ctx) }
    }

    func ints(_ key: String) -> [Int] {
        list(key) { n, p in YAMLScalar.int(n, path: p, ctx) }
    }

    func stringMap(_ key: String) -> [String: String] {
        map(key) { n, p in YAMLScalar.string(n, path: p, ctx) }
    }

    func intMap(_ key: String) -> [String: Int] {
        map(key) { n, p in YAMLScalar.int(n, path: p, ctx) }
    }

    func object<T: NodeDecodable>(_ key: String, as type: T.Type = T.self) -> T? {
        guard let n = node(key) else { return nil }
        return Self.decode(n, path: child(key), pattern: childPattern(key), ctx: ctx)
    }

    func objects<T: NodeDecodable>(_ key: String, as type: T.Type = T.self) -> [T] {
        let pattern = childPattern(key) + "[]"
        return list(key) { n, p in Self.decode(n, path: p, pattern: pattern, ctx: ctx) }
    }

    func objectMap<T: NodeDecodable>(_ key: String, as type: T.Type = T.self) -> [String: T] {
        let pattern = childPattern(key) + "{}"
        return map(key) { n, p in Self.decode(n, path: p, pattern: pattern, ctx: ctx) }
    }

    /// Free-form content (a plugin's config), kept as JSON.
    func json(_ key: String) -> JSONValue? {
        node(key).map(JSONValue.init(yaml:))
    }

    private func list<T>(_ key: String, _ element: (Node, String) -> T?) -> [T] {
        guard let n = node(key) else { return [] }
        guard case .sequence(let seq) = n else {
            ctx.report(child(key), "wrong type: expected a list, got \(YAMLScalar.typeName(n))")
            return []
        }
        return seq.enumerated().compactMap { i, item in
            let p = "\(child(key))[\(i)]"
            ctx.fields.append(FieldPosition(path: p, pattern: childPattern(key) + "[]", line: item.mark?.line ?? 0))
            return element(item, p)
        }
    }

    private func map<T>(_ key: String, _ value: (Node, String) -> T?) -> [String: T] {
        guard let n = node(key) else { return [:] }
        guard case .mapping(let mapping) = n else {
            ctx.report(child(key), "wrong type: expected a map, got \(YAMLScalar.typeName(n))")
            return [:]
        }
        var out: [String: T] = [:]
        for (k, v) in mapping {
            guard case .scalar(let name) = k else {
                ctx.report(child(key), "map keys must be strings")
                continue
            }
            let p = child(key) + "." + name.string
            ctx.fields.append(FieldPosition(path: p, pattern: childPattern(key) + "{}", line: k.mark?.line ?? 0))
            if let decoded = value(v, p) { out[name.string] = decoded }
        }
        return out
    }

    static func decode<T: NodeDecodable>(_ node: Node, path: String, pattern: String? = nil, ctx: DecodeContext) -> T? {
        guard let r = ObjectReader(node, path: path, pattern: pattern, ctx: ctx) else { return nil }
        let value = T(r)
        r.finish()
        return value
    }

    /// One edit apart, or equal ignoring case: enough to catch a typo.
    static func isNear(_ a: String, _ b: String) -> Bool { Spelling.distance(a, b) <= 1 }
}
