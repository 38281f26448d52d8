#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Gateway analyzers: nothing binds it (MSH0004), two gateways on one workload, port and host
/// (IST0145), a selector no declared workload matches (IST0101), a port the workload's Kubernetes
/// Service does not expose (IST0162), and credentials (IST0101, IST0161).
extension Analysis {
    mutating func gateways() {
        for gw in index.gateways {
            if index.virtualServices(boundTo: gw).isEmpty {
                add(.unboundGateway, gw, "", "no VirtualService binds this Gateway")
            }
            conflictingGateways(gw)
            if !kubernetes.workloads.isEmpty { gatewayWorkloads(gw) }
            credentials(gw)
        }
    }

    /// Istio's ConflictingGatewayAnalyzer: the same selector, the same port number and an
    /// overlapping host with the same bind address on two Gateways.
    mutating func conflictingGateways(_ gw: Config<Gateway>) {
        func bareHost(_ h: String) -> String { h.split(separator: "/", maxSplits: 1).last.map(String.init) ?? h }
        for (i, server) in gw.spec.servers.enumerated() {
            guard let port = server.port?.number else { continue }
            let others = index.gateways.filter { other in
                other.id != gw.id && other.spec.selector == gw.spec.selector && other.spec.servers.contains { s in
                    s.port?.number == port && s.bind == server.bind && s.hosts.contains { h in
                        server.hosts.contains { HostNames.intersection(bareHost(h).lowercased(), bareHost($0).lowercased()) != nil }
                    }
                }
            }
            guard !others.isEmpty else { continue }
            let names = others.map { "\($0.namespace)/\($0.name)" }.sorted().joined(separator: ",")
            add(.conflictingGateways, gw, "spec.servers[\(i)]",
                "Conflict with gateways \(names) (workload selector \(Self.selectorString(gw.spec.selector)), port \(port), hosts \(server.hosts.joined(separator: ","))).")
        }
    }

    /// Istio's IngressGatewayPortAnalyzer: the gateway's pods exist, and some Kubernetes Service
    /// selecting them exposes each server port (as a targetPort, or a port when it has none).
    mutating func gatewayWorkloads(_ gw: Config<Gateway>) {
        let pods = kubernetes.workloads(selectedBy: gw.spec.selector, namespace: nil)
        let selector = Self.selectorString(gw.spec.selector)
        let selectorPath = gw.spec.selector.keys.sorted().first.map { "spec.selector.\($0)" } ?? "spec.selector"
        guard !pods.isEmpty else {
            return add(.referencedResourceNotFound, gw, selectorPath, "Referenced selector not found: \(Self.quoted(selector))")
        }
        var targetPorts = Set<Int>()
        var servicePorts = Set<Int>()
        for pod in pods {
            for svc in kubernetes.services where svc.namespace == pod.namespace && !svc.selector.isEmpty && pod.podLabels.matches(svc.selector) {
                for p in svc.ports where p.protocol.uppercased() == "TCP" {
                    if let t = p.targetPort.flatMap({ Int($0) }), t != 0 {
                        targetPorts.insert(t)
                        servicePorts.insert(p.port)
                    } else {
                        targetPorts.insert(p.port)
                    }
                }
            }
        }
        for (i, server) in gw.spec.servers.enumerated() {
            guard let port = server.port?.number, !targetPorts.contains(port), !servicePorts.contains(port) else { continue }
            add(.gatewayPortNotDefinedOnService, gw, "spec.servers[\(i)].port.number",
                "The gateway is listening on a target port (port \(port)) that is not defined in the Service associated with its workload instances (Pod selector \(selector)). If you need to access the gateway port through the gateway Service, it will not be available.")
        }
    }

    /// Istio's SecretAnalyzer: a `credentialName` names a certificate meshd (or the gateway) can
    /// find: a directory `<config dir>/<credentialName>/` with `tls.crt` and `tls.key`, or a
    /// Kubernetes Secret of the input with those keys. Missing: IST0101; incomplete: IST0161.
    mutating func credentials(_ gw: Config<Gateway>) {
        for (i, server) in gw.spec.servers.enumerated() {
            guard let tls = server.tls else { continue }
            let names = (tls.credentialName.map { [$0] } ?? []) + tls.credentialNames
            for name in names where !name.isEmpty {
                let path = tls.credentialName == name ? "spec.servers[\(i)].tls.credentialName" : "spec.servers[\(i)].tls.credentialNames"
                switch credential(name, namespace: gw.namespace) {
                case .valid: continue
                case .missing:
                    add(.referencedResourceNotFound, gw, path, "Referenced credentialName not found: \(Self.quoted(name))")
                case .invalid(let why):
                    add(.invalidGatewayCredential, gw, path,
                        "The credential referenced by the Gateway \(gw.name) in namespace \(gw.namespace) is invalid, which can cause the traffic not to work as expected. (\(name): \(why))")
                }
            }
        }
    }

    enum CredentialState: Equatable { case valid, missing, invalid(String) }

    func credential(_ name: String, namespace: String) -> CredentialState {
        let (ns, secret) = name.contains("/") ? ConfigIndex.split(name, namespace) : (namespace, name)
        if let s = kubernetes.secrets.first(where: { $0.name == secret && $0.namespace == ns }) {
            let missing = ["tls.crt", "tls.key"].filter { !s.keys.contains($0) }
            return missing.isEmpty ? .valid : .invalid("the Secret has no \(missing.joined(separator: " or "))")
        }
        let fm = FileManager.default
        for dir in inputs.secretDirectories {
            let base = URL(fileURLWithPath: dir).appendingPathComponent(name)
            var isDirectory = false
            guard fm.fileExists(atPath: base.path, isDirectory: &isDirectory), isDirectory else { continue }
            let certificate = fm.contents(atPath: base.appendingPathComponent("tls.crt").path).map { String(decoding: $0, as: UTF8.self) }
            let key = fm.contents(atPath: base.appendingPathComponent("tls.key").path).map { String(decoding: $0, as: UTF8.self) }
            guard let certificate else { return .invalid("\(base.path) has no readable tls.crt") }
            guard let key else { return .invalid("\(base.path) has no readable tls.key") }
            guard certificate.contains("-----BEGIN CERTIFICATE-----") else { return .invalid("tls.crt holds no PEM certificate") }
            guard key.contains("PRIVATE KEY-----") else { return .invalid("tls.key holds no PEM private key") }
            return .valid
        }
        return .missing
    }
}
