import ArgumentParser
import ControlPlane
import Dispatch
import FilterHost
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOPosix
import Transport
import LuaRuntime
import PluginTesting

/// `meshd control-plane [serve]` and `meshd control-plane token`.
struct ControlPlaneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane",
        abstract: "The control plane: serve config and certificates to proxies (default), or issue a bootstrap token.",
        subcommands: [ControlPlaneServeCommand.self, ControlPlaneTokenCommand.self],
        defaultSubcommand: ControlPlaneServeCommand.self
    )
}

struct ControlPlaneServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve Istio-style config from a directory to every proxy over the discovery stream.",
        discussion: """
        Watches --config-dir (YAML, multi-document, nested folders). A changed directory is
        loaded and validated file by file: a file with an error is refused alone (logged, and
        shown at the status port's /debug/config_status with file and line; its last good
        version keeps serving) and the other files apply. Kinds meshd does not implement are
        skipped, and fields it does not enforce are accepted, each with a warning (logged once,
        shown in /debug/config_status and by proxy-status). Sidecars
        register their workloads by connecting and are removed when they go away. After a
        restart, proxies that reconnect still running a config are held (registered, sent
        nothing) for --reconnect-grace-ms, so they keep a complete config while the others
        reconnect.

        The control plane is the mesh CA: on first start it creates a root in --state-dir (or
        uses a plug-in CA in <state-dir>/cacerts: ca-cert.pem, ca-key.pem, root-cert.pem,
        cert-chain.pem) and signs proxies' CSRs for the identity their bootstrap token proves
        (`meshd control-plane token`). The TLS discovery port is served with a certificate from
        the same CA unless --tls-cert/--tls-key are given; proxies verify it with the root
        (<state-dir>/ca/ca-cert.pem, or cacerts/root-cert.pem) as --control-plane-ca.

        Status port: / (the mesh page: a live graph of workloads and services with each
        edge's rate, errors, p99 and mTLS, from the proxies' Istio metrics; `meshd dashboard`
        prints its URL), /api/graph (the same as JSON), /ready, /debug/syncz (every proxy:
        sent and acknowledged versions, overall and per resource type, SYNCED/STALE/NACK with
        the reason), /debug/config_status, /debug/convergence (converged: every proxy SYNCED
        and no push pending), /version, /metrics.
        """
    )

    @Option(name: .customLong("config-dir"), help: "Directory of Istio YAML to serve.")
    var configDir: String

    @Option(name: .customLong("discovery-port"), help: "Discovery (gRPC) port (Istio: 15010).")
    var discoveryPort: Int = 15010

    @Option(name: .customLong("tls-port"), help: "Discovery over TLS (Istio: 15012), served with a certificate from the mesh CA (or --tls-cert/--tls-key). -1 disables.")
    var tlsPort: Int = -1

    @OptionGroup var state: StateDirectoryOptions

    @Option(name: .customLong("cert-ttl-seconds"), help: "Longest (and default) lifetime of workload certificates (Istio: 24 h).")
    var certTTLSeconds: Int = 86_400

    @Option(name: .customLong("tls-cert"), help: "Certificate chain (PEM) for the TLS discovery port.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "Private key (PEM) for the TLS discovery port.")
    var tlsKey: String?

    @Option(name: .customLong("status-port"), help: "Monitoring/status port (Istio: 15014).")
    var statusPort: Int = 15014

    @Option(name: .long, help: "Address to listen on.")
    var address: String = "127.0.0.1"

    @Option(name: .customLong("debounce-ms"),
            help: "Quiet time after a config change before it is pushed; also how long proxies joining or leaving are batched.")
    var debounceMs: Int = 100

    @Option(name: .customLong("reconnect-grace-ms"),
            help: "After start, how long proxies that reconnect with a config wait for the others (proxies retry at least every 6.25 s).")
    var reconnectGraceMs: Int = 7000

    @Option(name: .customLong("jwks-cache-duration-ms"),
            help: "How long proxies keep a JWKS fetched from a RequestAuthentication jwksUri (Envoy: 5 min).")
    var jwksCacheDurationMs: Int?

    @Option(name: .customLong("graph-scrape-interval-ms"),
            help: "How often the mesh page's data is scraped from every proxy's admin /stats/prometheus. 0 disables.")
    var graphScrapeIntervalMs: Int = 2000

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() throws {
        let logger = ProcessLogging.bootstrap(level: logLevel, label: "meshd.control-plane")
        let trustDomain = try state.trustDomain
        let runtime = ControlPlaneRuntime<ConfigStore>(directory: configDir, logger: logger,
                                                       debounce: Double(debounceMs) / 1000,
                                                       compile: Self.compiler(meshConfig: state.meshConfigPath,
                                                                              jwksCacheDurationMs: jwksCacheDurationMs,
                                                                              secrets: CredentialReader(directory: configDir)),
                                                       prepare: Self.preparer(trustDomain: trustDomain))
        // The watcher's first look comes before the first load, so an edit made during it is seen.
        let watcher = DirectoryWatcher(directory: configDir, alsoWatching: state.meshConfigPath.map { [$0] } ?? [],
                                       debounce: Double(debounceMs) / 1000) { mayRefuse in
            runtime.reload(mayRefuse: mayRefuse) || mayRefuse
        }
        runtime.reload()
        runtime.hub.holdReconnectingProxies(for: Double(reconnectGraceMs) / 1000)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let stateDirectory = try state.directory(configDir: configDir)
        let authority = try CertificateAuthority(stateDirectory: stateDirectory, trustDomain: trustDomain)
        logger.info("mesh CA ready", metadata: ["origin": "\(authority.origin)", "trust_domain": "\(authority.trustDomain)",
                                                "root_sha256": "\(authority.rootFingerprint)"])
        let signer = CertificateSigner(authority: authority, defaultTTL: TimeInterval(certTTLSeconds), logger: logger)
        let discovery = try DiscoveryServer(group: group, host: address, port: discoveryPort, hub: runtime.hub, signer: signer)
        var secure: DiscoveryServer?
        if tlsPort >= 0 {
            let context: TLSServerContext
            if let tlsCert, let tlsKey {
                context = try TLSServerContext(certificateChainFile: tlsCert, privateKeyFile: tlsKey, alpnProtocols: ["h2"])
            } else {
                context = try ControlPlaneServing.context(authority, address: address, directory: stateDirectory)
            }
            secure = try DiscoveryServer(group: group, host: address, port: tlsPort, hub: runtime.hub, tls: context, signer: signer)
        }
        let secureServer = secure
        let statuses: MeshGraphCollector.Proxies = { runtime.hub.statuses }
        let collector = graphScrapeIntervalMs > 0
            ? MeshGraphCollector(proxies: statuses, interval: Double(graphScrapeIntervalMs) / 1000) : nil
        let status = try StatusServer(group: group, host: address, port: statusPort, pages: Self.pages(runtime, graph: collector))
        collector?.start()
        watcher.start()
        logger.info("control plane serving", metadata: ["discovery": "\(address):\(discovery.port ?? 0)",
                                                       "status": "\(address):\(status.port ?? 0)"])
        ProcessLogging.onReload {
            logger.info("SIGHUP: re-reading the config directory")
            watcher.fireNow()
        }
        ProcessLogging.onTerminate {
            watcher.stop()
            discovery.close()
            secureServer?.close()
            status.close()
            collector?.stop()
            exitProcess(0)
        }
        dispatchMain()
    }

    /// Loads and validates the directory (files whose text did not change since the last load
    /// are not parsed again); a file with an error is refused alone (its last good version
    /// stays), the others apply.
    /// The mesh config file, when given, is read again with every load (a SIGHUP or any change in
    /// the directory); one that cannot be used is refused and the last good one stays. The
    /// secrets the config names are read with every load too (`secrets`).
    static func compiler(meshConfig meshConfigPath: String? = nil, jwksCacheDurationMs: Int? = nil,
                         secrets reader: CredentialReader) -> ControlPlaneRuntime<ConfigStore>.Compile {
        let cache = ConfigStore.ParseCache()
        let admission = FileAdmission()
        let lastGoodMesh = NIOLockedValueBox(MeshConfig())
        return { directory in
            let store: ConfigStore
            do {
                store = try ConfigStore.load(directory: directory, cache: cache)
            } catch {
                return .init(config: nil, refused: ["\(directory): \(error)"])
            }
            // The mesh config first: Telemetry resources are checked against its providers.
            var meshRefused: [ControlPlane.ValidationError] = []
            var meshWarnings: [ControlPlane.ValidationError] = []
            if let meshConfigPath {
                let mesh = MeshConfigFile.load(path: meshConfigPath)
                if let config = mesh.config { lastGoodMesh.withLockedValue { $0 = config } }
                meshRefused = mesh.errors
                meshWarnings = mesh.warnings
            }
            var outcome = admission.admit(store, meshConfig: lastGoodMesh.withLockedValue { $0 })
            outcome.refused = meshRefused + outcome.refused
            outcome.warnings = meshWarnings + outcome.warnings
            outcome.store.meshConfig = lastGoodMesh.withLockedValue { $0 }
            outcome.warnings += MeshConfigFile.referenceWarnings(outcome.store.meshConfig, store: outcome.store)
            outcome.store.jwksCacheDurationMs = jwksCacheDurationMs
            // Secrets are read for what is served; one that cannot be read is a warning on the
            // field naming it (its server or client certificate is left out), never a refusal.
            let (credentials, problems) = CredentialReferences(outcome.store).read(with: reader)
            outcome.store.credentials = credentials
            return .init(config: outcome.store, refused: outcome.refused.map(\.description),
                         warnings: (outcome.warnings + problems).map(\.description))
        }
    }

    /// Every proxy's config: the store plus every connected sidecar as a registered workload,
    /// translated by a `TranslationSnapshot` that shares the work proxies have in common and
    /// reuses the previous snapshot's encodings.
    static func preparer(trustDomain: String) -> ControlPlaneRuntime<ConfigStore>.Prepare {
        let snapshots = TranslationSnapshots()
        return { store, connected in
            let snapshot = snapshots.next(store: store, registry: registry(store, connected, trustDomain: trustDomain))
            return { node in snapshot.resources(for: identity(node)) }
        }
    }

    /// Sidecars that asked for a mesh certificate (label `security.istio.io/tlsMode: istio`)
    /// carry their SPIFFE ID: peers reach them with mutual TLS and check that identity.
    static func registry(_ store: ConfigStore, _ connected: [Meshd_Discovery_V1_Node], trustDomain: String = "cluster.local") -> Registry {
        let portNames = Set(store.serviceEntries.flatMap { $0.spec.ports.compactMap(\.name) })
        let workloads = connected.filter { $0.kind == "sidecar" }.map { n in
            DynamicWorkload(name: n.name, namespace: n.namespace, address: n.address,
                            ports: Dictionary(uniqueKeysWithValues: portNames.map { ($0, Int(n.inboundPort)) }),
                            labels: n.labels, serviceAccount: n.serviceAccount,
                            meshIdentity: n.labels["security.istio.io/tlsMode"] == "istio"
                                ? "spiffe://\(trustDomain)/ns/\(n.namespace)/sa/\(n.serviceAccount.isEmpty ? "default" : n.serviceAccount)"
                                : nil)
        }
        return Registry(store: store, dynamic: workloads)
    }

    static func identity(_ node: Meshd_Discovery_V1_Node) -> ProxyIdentity {
        node.kind == "gateway"
            ? .gateway(name: node.name, namespace: node.namespace, labels: node.labels, address: node.address,
                       serviceAccount: node.serviceAccount.isEmpty ? "default" : node.serviceAccount)
            : .sidecar(name: node.name, namespace: node.namespace, labels: node.labels,
                       outboundPort: Int(node.outboundPort), inboundPort: Int(node.inboundPort),
                       appPort: node.appPort == 0 ? nil : Int(node.appPort), address: node.address,
                       serviceAccount: node.serviceAccount.isEmpty ? "default" : node.serviceAccount)
    }

    static func pages(_ runtime: ControlPlaneRuntime<ConfigStore>, graph collector: MeshGraphCollector?) -> [String: StatusServer.Page] {
        @Sendable func json(_ value: any Encodable) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
        }
        @Sendable func graph() -> MeshGraph {
            collector?.graph() ?? .empty()
        }
        return [
            "/": { (200, "text/html; charset=utf-8", GraphPage.html(graph())) },
            "/api/graph": { (200, "application/json", json(graph())) },
            "/ready": { runtime.status.configVersion > 0 ? (200, "text/plain", "ready\n") : (503, "text/plain", "no good config yet\n") },
            "/debug/syncz": { (200, "application/json", json(runtime.hub.statuses)) },
            "/version": { (200, "application/json", json(["component": "control-plane", "version": MeshdVersion.current])) },
            "/debug/config_status": { (200, "application/json", json(runtime.status)) },
            "/debug/convergence": { (200, "application/json", json(runtime.convergence)) },
            "/metrics": {
                let s = runtime.status
                let proxies = runtime.hub.statuses
                var out = ""
                func family(_ name: String, _ type: String, _ help: String) {
                    out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                }
                family("meshd_cp_config_version", "gauge", "Version of the last config the control plane accepted.")
                out += "meshd_cp_config_version \(s.configVersion)\n"
                family("meshd_cp_config_rejected_total", "counter", "Config loads refused (the last good config kept serving).")
                out += "meshd_cp_config_rejected_total \(s.rejected)\n"
                family("meshd_cp_pushes_total", "counter", "Config pushes sent to proxies.")
                out += "meshd_cp_pushes_total \(runtime.pushCount)\n"
                family("meshd_cp_proxies", "gauge", "Connected proxies by sync status.")
                for status in ["SYNCED", "STALE", "NACK"] {
                    out += "meshd_cp_proxies{status=\"\(status)\"} \(proxies.filter { $0.status.rawValue == status }.count)\n"
                }
                out += runtime.hub.metrics.prometheusText
                return (200, "text/plain; version=0.0.4", out)
            },
        ]
    }
}
