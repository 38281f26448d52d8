import ArgumentParser
import ControlPlane
import Foundation

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate Istio and meshd resources (like istioctl validate).",
        discussion: """
        Reads every YAML document of the given files (a directory is read recursively) and
        checks each resource: known kind and apiVersion, known fields with the right types,
        and each kind's rules. Errors are printed as `file:line: Kind/ns/name: path: reason`
        (the line is where the resource's document starts) and the exit status is 1.
        """
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A YAML file or directory (repeatable).")
    var files: [String] = []

    func validate() throws {
        if files.isEmpty { throw ArgumentParser.ValidationError("give at least one file with -f") }
    }

    func run() throws {
        let store = ConfigStore.load(files: files)
        let errors = Validator.validate(store)
        if errors.isEmpty {
            print("✔ \(store.resources.count) resources valid")
            return
        }
        for e in errors { FileHandle.standardError.write(Data((e.description + "\n").utf8)) }
        let bad = Set(errors.compactMap(\.resource)).count
        FileHandle.standardError.write(Data("✘ \(errors.count) error\(errors.count == 1 ? "" : "s")\(bad > 0 ? " in \(bad) resource\(bad == 1 ? "" : "s")" : "")\n".utf8))
        throw ExitCode(1)
    }
}
