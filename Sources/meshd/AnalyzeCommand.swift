import ArgumentParser
import ControlPlane
import Foundation

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyze a directory of resources for broken references (like istioctl analyze).",
        discussion: """
        Validates every resource, then checks what resources name across each other: hosts
        no ServiceEntry defines, subsets no DestinationRule defines, missing Gateways,
        Gateways nothing binds, plugin targets that do not exist; warns about fields meshd
        does not enforce and kinds it skips. Prints one finding per line,
        `Severity [Code] file:line: Kind/ns/name: path: message`; exits 1 if any is an Error.
        """
    )

    @Argument(help: "Directory (or file) of YAML resources.")
    var path: String

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ArgumentParser.ValidationError("\(path) does not exist")
        }
        let store = ConfigStore.load(files: [path])
        let invalid = Validator.validate(store)
        var findings = invalid.map {
            Finding(.error, "SchemaValidation", location: $0.location, resource: $0.resource, path: $0.path, message: $0.reason)
        }
        findings += store.loadWarnings.map {
            Finding(.warning, "UnsupportedKind", location: $0.location, resource: $0.resource, path: $0.path, message: $0.reason)
        }
        let refused = Set(invalid.compactMap(\.resource))
        findings += Validator.warnings(store.resources.filter { !refused.contains($0.id) }).map {
            Finding(.warning, "NotEnforced", location: $0.location, resource: $0.resource, path: $0.path, message: $0.reason)
        }
        findings += Analyzer.analyze(store)
        for f in findings { print(f) }
        let errors = findings.filter { $0.severity == .error }.count
        let warnings = findings.filter { $0.severity == .warning }.count
        if findings.isEmpty {
            print("✔ No validation issues found when analyzing \(path) (\(store.resources.count) resources).")
        } else {
            print("\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s") in \(store.resources.count) resources")
        }
        if errors > 0 { throw ExitCode(1) }
    }
}
