import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `meshd dashboard`: where the mesh page is (the control plane's status port serves it).
struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Print the URL of the mesh page (live graph, proxies' sync state) served by the control plane.",
        discussion: """
        The page lives at the control plane's status port (`/`; its data as JSON at
        `/api/graph`). It is self-contained and works offline. With --open, xdg-open is
        asked to show it when xdg-open is installed.
        """
    )

    @Option(name: [.customLong("control-plane"), .customLong("control-plane-status")],
            help: "The control plane's status address, HOST:PORT.")
    var controlPlane: String = "127.0.0.1:15014"

    @Flag(help: "Open the page with xdg-open, when present.")
    var open = false

    func run() throws {
        let url = "http://\(controlPlane)/"
        print(url)
        if (try? StatusFetch.json(controlPlane, "/api/graph", what: "the control plane")) == nil {
            StandardError.write("warning: no control plane answers at \(controlPlane) (is it running, on this status port?)\n")
        }
        guard open else { return }
        let opener = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/xdg-open" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let opener else {
            StandardError.write("xdg-open not found: open \(url) in a browser\n")
            return
        }
        try spawnDetached(opener, [url])
    }
}
