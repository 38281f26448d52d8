import ArgumentParser

@main
struct Meshd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshd",
        abstract: "A service mesh: proxy with native and Lua filters, and its control plane.",
        subcommands: [ControlPlaneCommand.self, ProxyCommand.self, SidecarCommand.self, GatewayCommand.self, ProxyStatusCommand.self,
                      ProxyConfigCommand.self, ValidateCommand.self, AnalyzeCommand.self, PluginCommand.self, DashboardCommand.self,
                      DemoAppCommand.self]
    )
}
