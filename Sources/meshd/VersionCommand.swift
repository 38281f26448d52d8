import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// `meshd version`: this binary's version and, when the control plane answers, its version and
/// the versions its proxies run (as `istioctl version`).
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print meshd's version, and the control plane's and its proxies' when it is reachable.",
        discussion: """
        The control plane is asked at --control-plane-status; when it does not answer, the
        client version is printed all the same, with a note on stderr (exit status 0).
        --short prints the client version alone, without asking the control plane.
        """
    )

    @Flag(help: "Print only this binary's version number.")
    var short = false

    @OptionGroup var controlPlane: ControlPlaneAddress
    @OptionGroup var output: OutputOptions

    func run() throws {
        if short {
            if output.format == .table { return print(MeshdVersion.current) }
            return try output.emit(["clientVersion": ["version": MeshdVersion.current]])
        }
        var report: [String: Any] = ["clientVersion": ["version": MeshdVersion.current]]
        do throws(CLIFailure) {
            let server = try StatusFetch.json(controlPlane.status, "/version", what: "the control plane") as? [String: Any] ?? [:]
            report["controlPlaneVersion"] = ["address": controlPlane.status, "version": server["version"] as? String ?? "unknown"]
            report["dataPlaneVersion"] = try StatusFetch.proxies(controlPlane.status).map { p -> [String: Any] in
                let v = p["proxyVersion"] as? String ?? ""
                return ["id": p["id"] as? String ?? "", "version": v.isEmpty ? "unknown" : v]
            }
        } catch {
            StandardError.write("note: no control plane version: \(error.description)\n")
        }
        if output.format != .table { return try output.emit(report) }
        print("client version: \(MeshdVersion.current)")
        guard let server = report["controlPlaneVersion"] as? [String: Any] else { return }
        print("control plane version: \(server["version"] ?? "unknown")")
        // As istioctl: each version the proxies run, with how many run it.
        let proxies = report["dataPlaneVersion"] as? [[String: Any]] ?? []
        let counts = Dictionary(grouping: proxies) { $0["version"] as? String ?? "unknown" }.mapValues(\.count)
        for (version, count) in counts.sorted(by: { $0.key < $1.key }) {
            print("data plane version: \(version) (\(count) prox\(count == 1 ? "y" : "ies"))")
        }
    }
}
