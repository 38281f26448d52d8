/// Every secret name the config refers to, with the field that names it: Gateway servers'
/// `tls.credentialName`, `credentialNames`, `caCertCredentialName` (and, for MUTUAL, Istio's
/// `<credentialName>-cacert`), DestinationRules' `tls.credentialName`.
public struct CredentialReferences: Sendable {
    public struct Reference: Sendable, Equatable {
        public enum Need: Sendable, Equatable {
            /// A certificate and its key (a CA beside them is used when present).
            case certificate
            /// A CA bundle only.
            case ca
            /// Istio's `<name>-cacert`: used when the directory exists, else the CA of `<name>`.
            case optionalCA
        }

        public var resource: Resource
        public var path: String
        public var name: String
        public var need: Need
    }

    public private(set) var references: [Reference] = []

    public init(_ store: ConfigStore) {
        for r in store.effective {
            switch r.spec {
            case .gateway(let gw):
                for (i, s) in gw.servers.enumerated() {
                    guard let tls = s.tls else { continue }
                    let p = "spec.servers[\(i)].tls"
                    let mutual = tls.mode == "MUTUAL" || tls.mode == "OPTIONAL_MUTUAL"
                    if let name = tls.credentialName {
                        references.append(Reference(resource: r, path: p + ".credentialName", name: name, need: .certificate))
                        if mutual {
                            references.append(Reference(resource: r, path: p + ".credentialName", name: name + "-cacert", need: .optionalCA))
                        }
                    }
                    for (j, name) in tls.credentialNames.enumerated() {
                        references.append(Reference(resource: r, path: p + ".credentialNames[\(j)]", name: name, need: .certificate))
                        if mutual, j == 0 {
                            references.append(Reference(resource: r, path: p + ".credentialNames[0]", name: name + "-cacert", need: .optionalCA))
                        }
                    }
                    if let name = tls.caCertCredentialName {
                        references.append(Reference(resource: r, path: p + ".caCertCredentialName", name: name, need: .ca))
                    }
                }
            case .destinationRule(let dr):
                var policies: [(String, TrafficPolicy)] = dr.trafficPolicy.map { [("spec.trafficPolicy", $0)] } ?? []
                for (i, s) in dr.subsets.enumerated() {
                    if let tp = s.trafficPolicy { policies.append(("spec.subsets[\(i)].trafficPolicy", tp)) }
                }
                for (p, tp) in policies {
                    var settings = [(p, tp.settings)]
                    for (i, pl) in tp.portLevelSettings.enumerated() { settings.append(("\(p).portLevelSettings[\(i)]", pl.settings)) }
                    for (sp, s) in settings {
                        guard let tls = s.tls, let name = tls.credentialName else { continue }
                        let need: Reference.Need = tls.mode == "MUTUAL" ? .certificate : .ca
                        references.append(Reference(resource: r, path: sp + ".tls.credentialName", name: name, need: need))
                        if tls.mode == "MUTUAL" {
                            references.append(Reference(resource: r, path: sp + ".tls.credentialName", name: name + "-cacert", need: .optionalCA))
                        }
                    }
                }
            default:
                break
            }
        }
    }

    /// Reads every referenced secret and returns them with a warning (file, line, field) for
    /// each reference whose secret could not be read.
    public func read(with reader: CredentialReader) -> (credentials: [String: TLSCredential], warnings: [ValidationError]) {
        let certificates = Set(references.filter { $0.need == .certificate }.map(\.name))
        let cas = Set(references.filter { $0.need == .ca }.map(\.name))
        // `<name>-cacert` is optional: read only when its directory is there.
        let optional = Set(references.filter { $0.need == .optionalCA }.map(\.name))
            .filter { CredentialReader.isSecretName($0) && CredentialReader.directoryExists($0, in: reader.directory) }
        let outcome = reader.read(certificates, caOnly: cas.union(optional))
        var warnings: [ValidationError] = []
        for ref in references where ref.need != .optionalCA {
            guard let problem = outcome.problems[ref.name] else { continue }
            warnings.append(ValidationError(.warning, location: ref.resource.location(of: ref.path), resource: ref.resource.id,
                                            path: ref.path, reason: "credentialName \"\(ref.name)\": \(problem)"))
        }
        for ref in references where ref.need == .optionalCA {
            guard let problem = outcome.problems[ref.name] else { continue }
            warnings.append(ValidationError(.warning, location: ref.resource.location(of: ref.path), resource: ref.resource.id,
                                            path: ref.path, reason: "\"\(ref.name)\": \(problem)"))
        }
        return (outcome.credentials, warnings)
    }
}
