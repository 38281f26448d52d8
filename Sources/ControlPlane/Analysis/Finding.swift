/// One thing `Analyzer` found: `Error [Code] file:line: Kind/ns/name: path: message`.
public struct Finding: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Comparable {
        case error = "Error", warning = "Warning", info = "Info"

        private var rank: Int { self == .error ? 0 : self == .warning ? 1 : 2 }
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    public var severity: Severity
    /// What kind of problem, e.g. `ReferencedResourceNotFound`.
    public var code: String
    public var location: SourceLocation
    /// `Kind/namespace/name`.
    public var resource: String?
    public var path: String
    public var message: String

    public init(_ severity: Severity, _ code: String, location: SourceLocation, resource: String?, path: String = "",
                message: String) {
        self.severity = severity
        self.code = code
        self.location = location
        self.resource = resource
        self.path = path
        self.message = message
    }

    public var description: String {
        var s = "\(severity.rawValue) [\(code)] \(location): "
        if let resource { s += resource + ": " }
        if !path.isEmpty { s += path + ": " }
        return s + message
    }
}
