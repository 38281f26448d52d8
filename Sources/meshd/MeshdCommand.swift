import ArgumentParser
import ControlPlane
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct Meshd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshd",
        abstract: "A service mesh: proxy with native and Lua filters, and its control plane.",
        subcommands: [ControlPlaneCommand.self, ProxyCommand.self, SidecarCommand.self, GatewayCommand.self, ProxyStatusCommand.self,
                      ProxyConfigCommand.self, ValidateCommand.self, AnalyzeCommand.self, PluginCommand.self, DashboardCommand.self,
                      VersionCommand.self, DemoAppCommand.self]
    )

    /// ArgumentParser's, plus: an unknown subcommand gets a "did you mean", and a runtime
    /// failure (`CLIFailure`) is one `error:` line and exit status 1, not the usage text.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let unknown = UnknownSubcommand.find(arguments, under: Meshd.self) {
            StandardError.write(unknown.message)
            exitProcess(ExitCode.validationFailure.rawValue)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let failure as CLIFailure {
            StandardError.write("error: \(failure.description)\n")
            exitProcess(1)
        } catch {
            exit(withError: error)
        }
    }
}

/// A word where a subcommand is expected that names none (ArgumentParser would say only
/// "Unexpected argument"), with the nearest subcommand name, as cobra (istioctl) words it.
struct UnknownSubcommand {
    let word: String
    let path: String
    let suggestion: String?

    var message: String {
        var text = "error: unknown command \"\(word)\" for \"\(path)\"\n"
        if let suggestion { text += "\nDid you mean this?\n\t\(suggestion)\n" }
        return text + "\nRun '\(path) --help' for usage.\n"
    }

    static func find(_ arguments: [String], under root: any ParsableCommand.Type) -> UnknownSubcommand? {
        var command = root
        var path = [root.configuration.commandName ?? root._commandName]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            // Options, leaf commands' arguments, and words a default subcommand may take are not ours to judge.
            if word.hasPrefix("-") || subcommands.isEmpty { return nil }
            let names = subcommands.map { ($0, [$0.configuration.commandName ?? $0._commandName] + $0.configuration.aliases) }
            if let next = names.first(where: { $0.1.contains(word) })?.0 {
                command = next
                path.append(word)
                continue
            }
            if word == "help" || command.configuration.defaultSubcommand != nil { return nil }
            return UnknownSubcommand(word: word, path: path.joined(separator: " "),
                                     suggestion: Spelling.suggestion(for: word, among: names.flatMap { $0.1 }))
        }
        return nil
    }
}
