/// Decodes `Decodable` values from a YAML node. Scalars convert as YAML reads them: a string
/// field takes any scalar's text, a number field a plain number (`"80"` quoted is a string),
/// a boolean field a YAML 1.1 boolean not tagged as a string; null is nil.
public struct NodeDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type = T.self, from node: Node) throws -> T {
        try T(from: NodeDecoding(node: node, codingPath: []))
    }

    /// Decodes the single document of `text` (an empty text is a null document).
    public func decode<T: Decodable>(_ type: T.Type = T.self, from text: String) throws -> T {
        let node = try YAMLParser.compose(text) ?? .scalar(Node.Scalar("", tag: .null, style: .plain, mark: nil))
        return try decode(type, from: node)
    }
}

private struct IndexKey: CodingKey {
    var stringValue: String { "\(intValue!)" }
    var intValue: Int?
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private func describe(_ node: Node) -> String {
    switch node {
    case .mapping: return "a map"
    case .sequence: return "a list"
    case .scalar(let s): return s.tag == .null ? "null" : "scalar \"\(s.string)\""
    }
}

private func mismatch(_ type: Any.Type, _ node: Node, _ path: [CodingKey]) -> DecodingError {
    .typeMismatch(type, .init(codingPath: path, debugDescription: "Expected \(type), found \(describe(node))."))
}

private struct NodeDecoding: Decoder, SingleValueDecodingContainer {
    let node: Node
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let m) = node else { throw mismatch([String: Any].self, node, codingPath) }
        return KeyedDecodingContainer(Keyed<Key>(mapping: m, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .sequence(let s) = node else { throw mismatch([Any].self, node, codingPath) }
        return Unkeyed(items: s.items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { node.isNull }

    private func scalar<T>(_ type: T.Type, _ read: (Node) -> T?) throws -> T {
        guard let v = read(node) else { throw mismatch(type, node, codingPath) }
        return v
    }

    func decode(_ type: Bool.Type) throws -> Bool { try scalar(type) { $0.bool } }
    func decode(_ type: String.Type) throws -> String { try scalar(type) { $0.string } }
    func decode(_ type: Double.Type) throws -> Double { try scalar(type) { $0.float } }
    func decode(_ type: Float.Type) throws -> Float { try scalar(type) { $0.float.map(Float.init) } }
    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        try scalar(type) { $0.int.flatMap { T(exactly: $0) } }
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: self) }
}

private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let mapping: Node.Mapping
    let codingPath: [CodingKey]

    var allKeys: [Key] { mapping.compactMap { $0.key.string.flatMap(Key.init(stringValue:)) } }

    func contains(_ key: Key) -> Bool { mapping[key.stringValue] != nil }

    private func decoder(_ key: CodingKey) throws -> NodeDecoding {
        guard let node = mapping[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath,
                                                       debugDescription: "No value associated with key \"\(key.stringValue)\"."))
        }
        return NodeDecoding(node: node, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try decoder(key).decodeNil() }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder(key).decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try decoder(key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { NodeDecoding(node: .mapping(mapping), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { try decoder(key) }
}

private struct Unkeyed: UnkeyedDecodingContainer {
    let items: [Node]
    let codingPath: [CodingKey]
    var currentIndex = 0

    init(items: [Node], codingPath: [CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next<T>(_ type: T.Type) throws -> NodeDecoding {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [IndexKey(currentIndex)],
                                                          debugDescription: "Unkeyed container is at end."))
        }
        defer { currentIndex += 1 }
        return NodeDecoding(node: items[currentIndex], codingPath: codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next(type).decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next([String: Any].self).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        try next([Any].self).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder { try next(Any.self) }
}
