import MeshAPI

/// The scalars native filter configs read (MeshAPI's JSONValue offers strings, arrays, maps).
extension JSONValue {
    var asNumber: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    var asBool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
}
