import CYAML

/// Why a text is not YAML: libyaml's problem and where it was found, with the construct it
/// was reading (`while parsing a block mapping`) and where that started.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public enum Stage: String, Sendable {
        case reader, scanner, parser, composer
    }

    public var stage: Stage
    public var problem: String
    public var mark: Node.Mark
    public var context: String?
    public var contextMark: Node.Mark?

    public init(stage: Stage, problem: String, mark: Node.Mark, context: String? = nil, contextMark: Node.Mark? = nil) {
        self.stage = stage
        self.problem = problem
        self.mark = mark
        self.context = context
        self.contextMark = contextMark
    }

    /// `3:5: error: parser: did not find expected key (while parsing a block mapping at line 1)`.
    public var description: String {
        var text = "\(mark): error: \(stage.rawValue): \(problem)"
        if let context, let contextMark { text += " (\(context) at line \(contextMark.line))" }
        return text
    }
}

/// Reads the documents of a YAML stream one at a time (libyaml's parser events, composed into
/// `Node`s). Not thread-safe: one parser per text.
public final class YAMLParser {
    private var parser = yaml_parser_t()
    /// libyaml reads from this buffer for the parser's whole life.
    private let input: UnsafeMutableBufferPointer<UInt8>
    private var anchors: [String: Node] = [:]
    private var finished = false

    public init(_ text: String) {
        let bytes = Array(text.utf8)
        input = .allocate(capacity: max(bytes.count, 1))
        _ = input.initialize(from: bytes)
        yaml_parser_initialize(&parser)
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, input.baseAddress, bytes.count)
    }

    deinit {
        yaml_parser_delete(&parser)
        input.deallocate()
    }

    /// The next document's root, nil at the end of the stream. An empty document is a null scalar.
    public func nextDocument() throws -> Node? {
        while !finished {
            var event = try next()
            defer { yaml_event_delete(&event) }
            switch event.type {
            case YAML_DOCUMENT_START_EVENT:
                anchors = [:]
                var first = try next()
                defer { yaml_event_delete(&first) }
                let root = try compose(&first)
                var end = try next()
                yaml_event_delete(&end)
                return root
            case YAML_STREAM_END_EVENT:
                finished = true
            default:
                continue
            }
        }
        return nil
    }

    /// Every document of `text`.
    public static func documents(_ text: String) throws -> [Node] {
        let parser = YAMLParser(text)
        var out: [Node] = []
        while let doc = try parser.nextDocument() { out.append(doc) }
        return out
    }

    /// The single document of `text` (nil when it has none); more than one is an error.
    public static func compose(_ text: String) throws -> Node? {
        let parser = YAMLParser(text)
        guard let root = try parser.nextDocument() else { return nil }
        if let second = try parser.nextDocument() {
            throw YAMLError(stage: .composer, problem: "expected a single document in the stream",
                            mark: second.mark ?? Node.Mark(line: 1, column: 1),
                            context: "but found another document", contextMark: root.mark)
        }
        return root
    }

    private func next() throws -> yaml_event_t {
        var event = yaml_event_t()
        guard yaml_parser_parse(&parser, &event) == 1 else { throw error() }
        return event
    }

    private func compose(_ event: inout yaml_event_t) throws -> Node {
        let mark = Self.mark(event.start_mark)
        switch event.type {
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let node = anchors[name] else {
                throw YAMLError(stage: .composer, problem: "found undefined alias \"\(name)\"", mark: mark)
            }
            return node
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
            let style = Self.style(s.style)
            let tag: Tag
            if let explicit = Self.string(s.tag), explicit != "!" {
                tag = Tag(rawValue: explicit)
            } else {
                tag = s.plain_implicit == 1 && style == .plain ? Tag.resolve(plain: text) : .str
            }
            let node = Node.scalar(Node.Scalar(text, tag: tag, style: style, mark: mark))
            register(s.anchor, node)
            return node
        case YAML_SEQUENCE_START_EVENT:
            let tag = Self.string(event.data.sequence_start.tag).map(Tag.init(rawValue:)) ?? .seq
            var items: [Node] = []
            while true {
                var item = try next()
                defer { yaml_event_delete(&item) }
                if item.type == YAML_SEQUENCE_END_EVENT { break }
                items.append(try compose(&item))
            }
            let node = Node.sequence(Node.Sequence(items, tag: tag, mark: mark))
            register(event.data.sequence_start.anchor, node)
            return node
        case YAML_MAPPING_START_EVENT:
            let tag = Self.string(event.data.mapping_start.tag).map(Tag.init(rawValue:)) ?? .map
            var pairs: [(Node, Node)] = []
            var keys: Set<String> = []
            while true {
                var keyEvent = try next()
                defer { yaml_event_delete(&keyEvent) }
                if keyEvent.type == YAML_MAPPING_END_EVENT { break }
                let key = try compose(&keyEvent)
                var valueEvent = try next()
                defer { yaml_event_delete(&valueEvent) }
                let value = try compose(&valueEvent)
                if case .scalar(let k) = key, !keys.insert(k.string).inserted {
                    throw YAMLError(stage: .composer, problem: "found duplicate key \"\(k.string)\"",
                                    mark: k.mark ?? mark, context: "while constructing a mapping", contextMark: mark)
                }
                pairs.append((key, value))
            }
            let node = Node.mapping(Node.Mapping(pairs, tag: tag, mark: mark))
            register(event.data.mapping_start.anchor, node)
            return node
        default:
            throw YAMLError(stage: .composer, problem: "unexpected event", mark: mark)
        }
    }

    private func register(_ anchor: UnsafeMutablePointer<yaml_char_t>?, _ node: Node) {
        if let name = Self.string(anchor) { anchors[name] = node }
    }

    private func error() -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
        switch parser.error {
        case YAML_READER_ERROR:
            return YAMLError(stage: .reader, problem: "\(problem) at byte \(parser.problem_offset)",
                             mark: Node.Mark(line: 1, column: 1))
        case YAML_SCANNER_ERROR, YAML_PARSER_ERROR:
            let context = parser.context.map { String(cString: $0) }
            return YAMLError(stage: parser.error == YAML_SCANNER_ERROR ? .scanner : .parser, problem: problem,
                             mark: Self.mark(parser.problem_mark), context: context,
                             contextMark: context == nil ? nil : Self.mark(parser.context_mark))
        default:
            return YAMLError(stage: .reader, problem: problem, mark: Self.mark(parser.problem_mark))
        }
    }

    private static func mark(_ m: yaml_mark_t) -> Node.Mark {
        Node.Mark(line: Int(m.line) + 1, column: Int(m.column) + 1)
    }

    private static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        p.map { String(cString: $0) }
    }

    private static func style(_ s: yaml_scalar_style_t) -> Node.Scalar.Style {
        switch s {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: return .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: return .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: return .literal
        case YAML_FOLDED_SCALAR_STYLE: return .folded
        default: return .plain
        }
    }
}
