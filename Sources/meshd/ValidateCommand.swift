import ArgumentParser
import ControlPlane
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate Istio and meshd resources (like istioctl validate).",
        discussion: """
        Reads every YAML document of the given files (a directory is read recursively) and
        checks each resource: known kind and apiVersion, known fields with the right types,
        and each kind's rules. Errors are printed as `file:line: Kind/ns/name: path: reason`,
        the line being the offending field's own; the exit status is 1.

        Warnings (`file:line: warning: …`) name what is accepted but not done as Istio would:
        fields meshd does not enforce (and what it does instead), documents of kinds it does
        not implement (skipped: Kubernetes kinds, Gateway API, EnvoyFilter, WasmPlugin,
        Telemetry). They do not fail validation unless --strict is given.

        A misspelled field is refused with the field meant, if one is near
        (`unknown field "wieght" (did you mean "weight"?)`). With -o json or -o yaml the
        result is one document on stdout: valid, resources, errors and warnings (each with
        file, line, resource, path, reason).
        """
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A YAML file or directory (repeatable).")
    var files: [String] = []

    @Option(name: .customLong("mesh-config"), help: "Also check this mesh config file (MeshConfig YAML or the istio ConfigMap).")
    var meshConfig: String?

    @Flag(help: "Fail (exit status 1) on warnings too: for CI, so that no field is ignored unnoticed.")
    var strict = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if files.isEmpty { throw ArgumentParser.ValidationError("give at least one file with -f") }
    }

    func run() throws {
        var store = ConfigStore.load(files: files)
        let mesh = meshConfig.map(MeshConfigFile.load(path:))
        if let config = mesh?.config { store.meshConfig = config }
        let errors = (mesh?.errors ?? []) + Validator.validate(store)
        // Warnings of resources that are refused anyway would only add noise.
        let refused = Set(errors.compactMap(\.resource))
        let references = mesh == nil ? [] : MeshConfigFile.referenceWarnings(store.meshConfig, store: store)
        let warnings = (mesh?.warnings ?? []) + references + store.loadWarnings
            + Validator.warnings(store.resources.filter { !refused.contains($0.id) })
        let failed = !errors.isEmpty || (strict && !warnings.isEmpty)
        if output.format != .table {
            try output.emit(["valid": !failed, "resources": store.resources.count,
                             "errors": errors.map(Self.record), "warnings": warnings.map(Self.record)] as [String: Any])
            if failed { throw ExitCode(1) }
            return
        }
        for w in warnings { StandardError.write((w.description + "\n")) }
        for e in errors { StandardError.write((e.description + "\n")) }
        let warned = warnings.isEmpty ? "" : ", \(Self.count(warnings.count, "warning"))"
        if errors.isEmpty {
            print("✔ \(store.resources.count) resources valid\(warned)")
            if strict && !warnings.isEmpty {
                StandardError.write("✘ --strict: \(Self.count(warnings.count, "warning")) count as failures\n")
                throw ExitCode(1)
            }
            return
        }
        let bad = refused.count
        StandardError.write("✘ \(Self.count(errors.count, "error"))\(bad > 0 ? " in \(Self.count(bad, "resource"))" : "")\(warned)\n")
        throw ExitCode(1)
    }

    static func record(_ issue: ControlPlane.ValidationError) -> [String: Any] {
        ["file": issue.location.file, "line": issue.location.line, "resource": issue.resource ?? "",
         "path": issue.path, "reason": issue.reason, "message": issue.description]
    }

    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
}
