/// A refused resource (or file): `file:line: Kind/ns/name: field.path: reason`.
/// The line is where the resource's document starts (or where invalid YAML was found).
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var location: SourceLocation
    /// `Kind/namespace/name`; nil for file-level errors (unreadable file, invalid YAML).
    public var resource: String?
    public var path: String
    public var reason: String

    public init(location: SourceLocation, resource: String? = nil, path: String = "", reason: String) {
        self.location = location
        self.resource = resource
        self.path = path
        self.reason = reason
    }

    public var description: String {
        var s = location.description + ": "
        if let resource { s += resource + ": " }
        if !path.isEmpty { s += path + ": " }
        return s + reason
    }
}
