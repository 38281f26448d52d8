import ArgumentParser

@main
struct Meshd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshd",
        abstract: "A service mesh: proxy with native and Lua filters, and its control plane.",
        subcommands: [ProxyCommand.self, ValidateCommand.self, AnalyzeCommand.self, DemoAppCommand.self]
    )
}
