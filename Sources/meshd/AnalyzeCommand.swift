import ArgumentParser
import ControlPlane
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyze files and directories of resources, like istioctl analyze.",
        discussion: """
        Validates every resource (IST0106), then runs Istio's analyzers over them all with
        Istio's message codes: references to what nothing defines (IST0101), conflicting
        VirtualServices and Gateways (IST0109, IST0145), hosts a Gateway does not serve (IST0132),
        selectors that select no workload, unverified upstream TLS, plaintext to STRICT workloads,
        and more (--list-analyzers). meshd's own messages (MSH codes) name the fields it does
        not enforce and the kinds it skips. Kubernetes Services, Pods, Deployments and Secrets
        in the input are read as the registry they describe.

        Prints istioctl's formats: `log` (the default), e.g.
        `Error [IST0101] (VirtualService default/foo file.yaml:12) Referenced gateway not found: "bar"`,
        or a list of messages in `json` or `yaml`. With `log`, the exit status is 79 when a
        message at or above --failure-threshold was found (whatever --output-threshold hides),
        65 when a file could not be parsed, else 0; json and yaml exit 0, as istioctl does.
        """
    )

    @Argument(help: "YAML files and directories (read recursively).")
    var paths: [String] = []

    @Option(name: [.customShort("o"), .long], help: "Output format: log, json or yaml.")
    var output: String = "log"

    @Option(help: "The severity level of analysis at which to display messages: Info, Warning or Error.")
    var outputThreshold: String = "Info"

    @Option(help: "The severity level of analysis at which to set a non-zero exit code: Info, Warning or Error.")
    var failureThreshold: String = "Error"

    @Flag(name: [.customShort("L"), .long], help: "List the analyzers available to run. Suppresses normal execution.")
    var listAnalyzers = false

    /// istioctl's exit codes (istioctl/cmd/sysexits.go).
    static let exitDataError: Int32 = 65
    static let exitAnalyzerFoundIssues: Int32 = 79

    func validate() throws {
        guard FindingFormat(rawValue: output) != nil else {
            throw ArgumentParser.ValidationError("invalid format, expected one of [log json yaml] but got \"\(output)\"")
        }
        for (flag, value) in [("--output-threshold", outputThreshold), ("--failure-threshold", failureThreshold)]
            where Finding.Severity(threshold: value) == nil {
            throw ArgumentParser.ValidationError("\(flag): invalid level option \"\(value)\" (Info, Warning, Error)")
        }
        if !listAnalyzers && paths.isEmpty { throw ArgumentParser.ValidationError("give at least one file or directory to analyze") }
    }

    func run() throws {
        if listAnalyzers {
            for a in Analyzer.analyzers.sorted(by: { $0.name < $1.name }) { print("* \(a.name):\n    \(a.description)") }
            return
        }
        let fm = FileManager.default
        for path in paths where !fm.fileExists(atPath: path) {
            throw ArgumentParser.ValidationError("\(path) does not exist")
        }
        let format = FindingFormat(rawValue: output)!
        let store = ConfigStore.load(files: paths)
        // Secret directories sit beside the resources: in a directory given, or beside a file given.
        let directories = paths.map { path -> String in
            var isDirectory = false
            return fm.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory
                ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path
        }
        let inputs = Analyzer.Inputs(kubernetes: KubernetesInventory.load(files: paths), secretDirectories: directories)
        let parseErrors = Analyzer.parseErrors(store)
        for e in parseErrors { StandardError.write("Error(s) adding files: \(e.description)\n") }
        let findings = Analyzer.report(store, inputs: inputs)
        let shown = findings.filter { $0.severity.isAtLeast(Finding.Severity(threshold: outputThreshold)!) }
        let target = paths.joined(separator: ", ")
        if format != .log || !shown.isEmpty { print(format.render(shown)) }
        if shown.isEmpty {
            let note = parseErrors.isEmpty ? "" : " (but \(parseErrors.count) file\(parseErrors.count == 1 ? "" : "s") could not be parsed)"
            StandardError.write("\(parseErrors.isEmpty ? "✔ " : "")No validation issues found when analyzing \(target)\(note).\n")
        }
        guard format == .log else { return }
        let threshold = Finding.Severity(threshold: failureThreshold)!
        if findings.contains(where: { $0.severity.isAtLeast(threshold) }) {
            StandardError.write("""
                Error: Analyzers found issues when analyzing \(target).
                See https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions.

                """)
            throw ExitCode(Self.exitAnalyzerFoundIssues)
        }
        if !parseErrors.isEmpty { throw ExitCode(Self.exitDataError) }
    }
}
