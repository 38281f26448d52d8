/// A refused configuration: where (file, field path) and why.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var file: String?
    public var line: Int?
    public var path: String
    public var reason: String

    public init(file: String? = nil, line: Int? = nil, path: String, reason: String) {
        self.file = file
        self.line = line
        self.path = path
        self.reason = reason
    }

    public var description: String {
        var s = ""
        if let file { s += file + (line.map { ":\($0)" } ?? "") + ": " }
        if !path.isEmpty { s += path + ": " }
        return s + reason
    }
}
