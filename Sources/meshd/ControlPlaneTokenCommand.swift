import ArgumentParser
import ControlPlane
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Transport

struct MeshConfigError: Error, CustomStringConvertible {
    var errors: [ControlPlane.ValidationError]
    var description: String { "the mesh config cannot be used:\n" + errors.map(\.description).joined(separator: "\n") }
}

/// Where the CA's state lives: the flag, else beside the config directory.
struct StateDirectoryOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"),
            help: "Directory of the CA (its root, or a plug-in CA in cacerts/) and the token key; default: <config-dir>.state beside the config directory.")
    var stateDir: String?

    @Option(name: .customLong("trust-domain"), help: "SPIFFE trust domain of workload identities; default: the mesh config's trustDomain (cluster.local).")
    var trustDomainFlag: String?

    @Option(name: .customLong("mesh-config"),
            help: "Istio's mesh config: a MeshConfig YAML file (istiod's --meshConfig) or the istio ConfigMap with data.mesh.")
    var meshConfigPath: String?

    /// The mesh config file's settings (Istio's defaults without one); a file that cannot be
    /// used stops the command, as it stops istiod.
    func meshConfig() throws -> MeshConfig {
        guard let meshConfigPath else { return MeshConfig() }
        let loaded = MeshConfigFile.load(path: meshConfigPath)
        guard let config = loaded.config else {
            throw MeshConfigError(errors: loaded.errors)
        }
        return config
    }

    var trustDomain: String {
        get throws { try trustDomainFlag ?? meshConfig().trustDomain }
    }

    func directory(configDir: String?) throws -> String {
        if let stateDir { return stateDir }
        guard let configDir else { throw ValidationError("--state-dir or --config-dir is required") }
        var base = configDir
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        return base + ".state"
    }
}

struct ControlPlaneTokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print a signed bootstrap token that lets a proxy get a certificate for one identity.",
        discussion: """
        The proxy presents it with --token-file; the control plane signs a CSR only for
        spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, the identity in the token
        (outside Kubernetes this stands in for the pod's service-account token). The token is
        presented again at every rotation, so it must outlive the proxy's run.
        """
    )

    @OptionGroup var state: StateDirectoryOptions

    @Option(name: .customLong("config-dir"), help: "The control plane's config directory (locates the default state directory).")
    var configDir: String?

    @Option(name: .long, help: "Namespace of the identity.")
    var namespace: String

    @Option(name: .customLong("service-account"), help: "Service account of the identity.")
    var serviceAccount: String

    @Option(name: .long, help: "How long the token is valid: e.g. 8760h (the default), 30m, 45s.")
    var ttl: String = "8760h"

    func run() throws {
        guard let seconds = Self.seconds(ttl), seconds > 0 else { throw ValidationError("--ttl: expected a duration like 24h, 30m or 45s") }
        let authority = try CertificateAuthority(stateDirectory: try state.directory(configDir: configDir), trustDomain: state.trustDomain)
        let signer = CertificateSigner(authority: authority, logger: Logger(label: "meshd.token"))
        print(try signer.token(namespace: namespace, serviceAccount: serviceAccount, ttl: seconds))
    }

    static func seconds(_ text: String) -> TimeInterval? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last, let factor = units[unit], let n = Double(text.dropLast()) { return n * factor }
        return Double(text)
    }
}

/// The TLS discovery port's certificate: issued by the mesh CA at start for the listen address
/// and the usual names (Istio's istiod.istio-system.svc), so proxies verify it with the root.
enum ControlPlaneServing {
    static func context(_ authority: CertificateAuthority, address: String, directory: String) throws -> TLSServerContext {
        let names = Set([address, "127.0.0.1", "::1", "localhost", "istiod.istio-system.svc", "meshd-control-plane"])
            .filter { $0 != "0.0.0.0" && $0 != "::" }.sorted()
        let (chain, key) = try authority.servingCertificate(names: names, ttl: 365 * 86_400)
        let dir = directory + "/serving"
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard fm.createFile(atPath: dir + "/key.pem", contents: Data(key.utf8), attributes: [.posixPermissions: 0o600]),
              fm.createFile(atPath: dir + "/cert-chain.pem", contents: Data(chain.utf8)) else {
            throw ValidationError("cannot write the discovery port's certificate in \(dir)")
        }
        return try TLSServerContext(certificateChainFile: dir + "/cert-chain.pem", privateKeyFile: dir + "/key.pem", alpnProtocols: ["h2"])
    }
}
