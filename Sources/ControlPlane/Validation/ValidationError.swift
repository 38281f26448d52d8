/// A refused resource (or file): `file:line: Kind/ns/name: field.path: reason`; or, as a
/// warning, something accepted that meshd does not do as Istio would (a field it does not
/// enforce, a kind it skips): `file:line: warning: Kind/ns/name: field.path: what meshd does`.
/// The line is the offending field's own (or where invalid YAML was found; or where the
/// document starts, for a problem with the whole document).
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error, warning
    }

    public var severity: Severity
    public var location: SourceLocation
    /// `Kind/namespace/name`; nil for file-level errors (unreadable file, invalid YAML).
    public var resource: String?
    public var path: String
    public var reason: String

    public init(_ severity: Severity = .error, location: SourceLocation, resource: String? = nil, path: String = "",
                reason: String) {
        self.severity = severity
        self.location = location
        self.resource = resource
        self.path = path
        self.reason = reason
    }

    public var description: String {
        var s = location.description + ": "
        if severity == .warning { s += "warning: " }
        if let resource { s += resource + ": " }
        if !path.isEmpty { s += path + ": " }
        return s + reason
    }
}
