/// A composed YAML node: aliases are already replaced by the node their anchor names, and
/// every node keeps where it starts (`mark`) and its tag, resolved as YAML 1.1 does for plain
/// scalars (`80` an int, `yes` a bool, `"80"` a string).
public enum Node: Sendable, Equatable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)

    /// Where a node starts in its text: line and column from 1 (columns count Unicode scalars).
    public struct Mark: Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var column: Int

        public init(line: Int, column: Int) {
            self.line = line
            self.column = column
        }

        public var description: String { "\(line):\(column)" }
    }

    public struct Scalar: Sendable, Equatable {
        /// How the scalar was written; only a plain one has its type resolved from its text.
        public enum Style: Sendable, Equatable {
            case plain, singleQuoted, doubleQuoted, literal, folded
        }

        public var string: String
        public var tag: Tag
        public var style: Style
        public var mark: Mark?

        /// A scalar built in code: plain, its tag resolved from `string`.
        public init(_ string: String, style: Style = .plain, mark: Mark? = nil) {
            self.init(string, tag: style == .plain ? Tag.resolve(plain: string) : .str, style: style, mark: mark)
        }

        public init(_ string: String, tag: Tag, style: Style, mark: Mark?) {
            self.string = string
            self.tag = tag
            self.style = style
            self.mark = mark
        }
    }

    /// A mapping's pairs in document order (keys are not required to be unique here: the
    /// composer refuses repeated scalar keys).
    public struct Mapping: Sendable, Equatable, RandomAccessCollection {
        public var pairs: [Pair]
        public var tag: Tag
        public var mark: Mark?

        public struct Pair: Sendable, Equatable {
            public var key: Node
            public var value: Node
        }

        public init(_ pairs: [(Node, Node)], tag: Tag = .map, mark: Mark? = nil) {
            self.pairs = pairs.map { Pair(key: $0.0, value: $0.1) }
            self.tag = tag
            self.mark = mark
        }

        public var startIndex: Int { pairs.startIndex }
        public var endIndex: Int { pairs.endIndex }
        public subscript(position: Int) -> (key: Node, value: Node) { (pairs[position].key, pairs[position].value) }

        /// The value of the first pair whose key is the scalar `key`.
        public subscript(key: String) -> Node? {
            pairs.first { $0.key.string == key }?.value
        }
    }

    public struct Sequence: Sendable, Equatable, RandomAccessCollection {
        public var items: [Node]
        public var tag: Tag
        public var mark: Mark?

        public init(_ items: [Node], tag: Tag = .seq, mark: Mark? = nil) {
            self.items = items
            self.tag = tag
            self.mark = mark
        }

        public var startIndex: Int { items.startIndex }
        public var endIndex: Int { items.endIndex }
        public subscript(position: Int) -> Node { items[position] }
    }
}

extension Node {
    public var mark: Mark? {
        switch self {
        case .scalar(let s): return s.mark
        case .mapping(let m): return m.mark
        case .sequence(let s): return s.mark
        }
    }

    public var tag: Tag {
        switch self {
        case .scalar(let s): return s.tag
        case .mapping(let m): return m.tag
        case .sequence(let s): return s.tag
        }
    }

    /// A scalar's text, whatever its type.
    public var string: String? {
        if case .scalar(let s) = self { return s.string }
        return nil
    }

    public var mapping: Mapping? {
        if case .mapping(let m) = self { return m }
        return nil
    }

    public var sequence: Sequence? {
        if case .sequence(let s) = self { return s }
        return nil
    }

    public var isNull: Bool { tag == .null }

    /// A plain scalar read as a YAML 1.1 integer (`0x1F`, `0o17`, `017`, `1_000`, `1:30`).
    public var int: Int? {
        guard case .scalar(let s) = self, s.style == .plain else { return nil }
        return ScalarText.int(s.string)
    }

    /// A plain scalar read as a number (`1.5`, `1e3`, `.inf`, `.nan`, any integer form).
    public var float: Double? {
        guard case .scalar(let s) = self, s.style == .plain else { return nil }
        return ScalarText.float(s.string)
    }

    /// A scalar not tagged as a string read as a YAML 1.1 boolean (`true`, `yes`, `on`, …).
    public var bool: Bool? {
        guard case .scalar(let s) = self, s.tag != .str else { return nil }
        return ScalarText.bool(s.string)
    }

    /// The value under a mapping's scalar key.
    public subscript(key: String) -> Node? {
        mapping?[key]
    }
}
