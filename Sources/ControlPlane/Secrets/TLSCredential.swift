#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import Transport

/// A TLS secret from the control plane's secret store, as PEM text: what a Kubernetes TLS or
/// generic secret holds for Istio's `credentialName`. A `<name>-cacert` secret holds only a CA.
public struct TLSCredential: Sendable, Equatable {
    public var certificateChain: String?
    public var privateKey: String?
    public var caCertificates: String?

    public init(certificateChain: String? = nil, privateKey: String? = nil, caCertificates: String? = nil) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.caCertificates = caCertificates
    }

    /// Istio's file names (pilot/pkg/credentials/kube): the generic secret's `cert`/`key`
    /// win over the TLS secret's `tls.crt`/`tls.key`, and `cacert` over `ca.crt`.
    static let certificateKeys = [("cert", "key"), ("tls.crt", "tls.key")]
    static let caKeys = ["cacert", "ca.crt"]
    /// Every file name a secret directory may hold: the directory watcher looks at these too.
    public static let fileNames: Set<String> = ["cert", "key", "cacert", "tls.crt", "tls.key", "ca.crt"]
}

/// The secret store outside Kubernetes: `<config dir>/<credentialName>/` holds a secret's
/// keys as files (`tls.crt`, `tls.key`, `ca.crt`, or `cert`, `key`, `cacert`). A secret that
/// cannot be read or does not hold a usable certificate is reported; while its directory is
/// there the last good version read of it keeps serving (a rotation caught half-written),
/// a directory taken away takes the secret with it. One reader per watched directory.
public final class CredentialReader: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var credentials: [String: TLSCredential] = [:]
        /// Why a name could not be read (this time), by name.
        public var problems: [String: String] = [:]
    }

    /// The config directory the secret directories are in.
    public let directory: String
    private let lastGood = NIOLockedValueBox<[String: TLSCredential]>([:])

    public init(directory: String) {
        self.directory = directory
    }

    /// Reads `names`; `caOnly` names need only a CA (`<name>-cacert`, caCertCredentialName).
    public func read(_ names: Set<String>, caOnly: Set<String> = []) -> Outcome {
        var out = Outcome()
        var good: [String: TLSCredential] = [:]
        for name in names.union(caOnly).sorted() {
            switch Self.read(name, in: directory, caOnly: caOnly.contains(name) && !names.contains(name)) {
            case .success(let c):
                good[name] = c
                out.credentials[name] = c
            case .failure(let problem):
                // A secret taken away is gone; one being rewritten keeps its last good version.
                if problem.directoryExists, let last = lastGood.withLockedValue({ $0[name] }) {
                    out.credentials[name] = last
                    out.problems[name] = problem.reason + " (the last good version read keeps serving)"
                    good[name] = last
                } else {
                    out.problems[name] = problem.reason
                }
            }
        }
        lastGood.withLockedValue { $0 = good }
        return out
    }

    struct Problem: Error {
        let reason: String
        var directoryExists = true
    }

    /// Is `name` a secret name (a Kubernetes object name: lowercase letters, digits, `-`, `.`)?
    /// Anything else could leave the directory.
    static func isSecretName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 253 && name != "." && name != ".." && !name.hasPrefix(".")
            && name.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }
    }

    static func directoryExists(_ name: String, in directory: String) -> Bool {
        var isDirectory = false
        return FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory) && isDirectory
    }

    static func read(_ name: String, in directory: String, caOnly: Bool) -> Result<TLSCredential, Problem> {
        guard isSecretName(name) else {
            return .failure(Problem(reason: "\"\(name)\" is not a secret name (lowercase letters, digits, '-' and '.')"))
        }
        let dir = directory + "/" + name
        guard directoryExists(name, in: directory) else {
            return .failure(Problem(reason: "secret directory \(dir) not found", directoryExists: false))
        }
        func file(_ key: String) -> String? {
            guard let data = FileManager.default.contents(atPath: dir + "/" + key), !data.isEmpty else { return nil }
            return String(decoding: data, as: UTF8.self)
        }
        var credential = TLSCredential()
        credential.caCertificates = TLSCredential.caKeys.lazy.compactMap(file).first
        if let pair = TLSCredential.certificateKeys.first(where: { file($0.0) != nil && file($0.1) != nil }) {
            credential.certificateChain = file(pair.0)
            credential.privateKey = file(pair.1)
        } else if !caOnly {
            let present = TLSCredential.fileNames.filter { FileManager.default.fileExists(atPath: dir + "/" + $0) }.sorted()
            return .failure(Problem(reason: "\(dir) has neither cert and key nor tls.crt and tls.key (readable and not empty); found: \(present.isEmpty ? "nothing" : present.joined(separator: ", "))"))
        }
        if caOnly && credential.caCertificates == nil {
            return .failure(Problem(reason: "\(dir) has no CA certificate (cacert or ca.crt)"))
        }
        if let reason = check(credential) { return .failure(Problem(reason: "\(dir): \(reason)")) }
        return .success(credential)
    }

    /// A certificate that parses and matches its key, and a CA bundle that parses: a pair
    /// caught mid-rotation (new certificate, old key) is refused here, never pushed.
    static func check(_ c: TLSCredential) -> String? {
        if let chain = c.certificateChain, let key = c.privateKey {
            guard let leaf = try? X509Certificate.chain(pem: chain).first else { return "the certificate is not PEM" }
            guard let k = try? PrivateKey(pem: key) else { return "the private key is not PEM" }
            guard leaf.matches(k) else { return "the private key does not match the certificate" }
        }
        if let ca = c.caCertificates, ((try? X509Certificate.chain(pem: ca)) ?? []).isEmpty {
            return "the CA certificates are not PEM"
        }
        return nil
    }
}
