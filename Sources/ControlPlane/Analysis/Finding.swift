#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import YAML

/// One thing `Analyzer` found, printed as istioctl prints an analysis message:
/// `Warning [IST0101] (VirtualService default/foo file.yaml:12) Referenced gateway not found: "bar"`.
public struct Finding: Sendable, Hashable, CustomStringConvertible {
    public typealias Severity = AnalysisMessage.Level

    public var type: AnalysisMessage
    public var location: SourceLocation
    /// `Kind/namespace/name`, nil for a file that is not one resource (invalid YAML).
    public var resource: String?
    /// The field the finding is about (its line is `location`'s).
    public var path: String
    public var message: String

    public init(_ type: AnalysisMessage, location: SourceLocation, resource: String?, path: String = "", message: String) {
        self.type = type
        self.location = location
        self.resource = resource
        self.path = path
        self.message = message
    }

    public var severity: Severity { type.level }
    public var code: String { type.code }

    /// `Kind namespace/name`, as istioctl names a resource.
    public var origin: String? {
        guard let resource else { return nil }
        let parts = resource.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count == 3 ? "\(parts[0]) \(parts[1])/\(parts[2])" : resource
    }

    public var description: String {
        let place = origin.map { "(\($0) \(location))" } ?? "(\(location))"
        return "\(severity.rawValue) [\(code)] \(place) \(message)"
    }

    /// istioctl's JSON/YAML form of a message (`-o json|yaml`), plus the field path.
    public var fields: [(String, String)] {
        var out: [(String, String)] = [("code", code)]
        if let url = type.documentationURL { out.append(("documentationUrl", url)) }
        out.append(("level", severity.rawValue))
        out.append(("message", message))
        if let origin { out.append(("origin", origin)) }
        if !path.isEmpty { out.append(("path", path)) }
        out.append(("reference", location.description))
        return out
    }
}

/// How `meshd analyze` prints findings: istioctl's `log`, `json` and `yaml` formats.
public enum FindingFormat: String, Sendable, CaseIterable {
    case log, json, yaml

    public func render(_ findings: [Finding]) -> String {
        let objects = findings.map { Dictionary($0.fields, uniquingKeysWith: { a, _ in a }) }
        if objects.isEmpty && self != .log { return "[]" }
        switch self {
        case .log:
            return findings.map(\.description).joined(separator: "\n")
        case .json:
            return JSONText.render(objects, pretty: true)
        case .yaml:
            // Keys sorted, as istioctl prints them; every value a string.
            let list = objects.map { object in
                Node.mapping(Node.Mapping(object.sorted { $0.key < $1.key }.map { key, value in
                    (.scalar(Node.Scalar(key, tag: .str, style: .plain, mark: nil)),
                     .scalar(Node.Scalar(value, tag: .str, style: .plain, mark: nil)))
                }))
            }
            var text = (try? YAMLEmitter.emit(.sequence(Node.Sequence(list)))) ?? "[]"
            while text.last == "\n" { text.removeLast() }
            return text
        }
    }
}
