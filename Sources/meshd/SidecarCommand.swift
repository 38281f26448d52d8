import ArgumentParser
import Dispatch
import FilterHost
import Filters
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOConcurrencyHelpers
import MeshAPI
import NIOCore
import NIOPosix
import Transport
import LuaRuntime
import PluginTesting

/// What `meshd sidecar` and `meshd gateway` share: a proxy whose config comes from the control plane.
struct ManagedProxyOptions: ParsableArguments {
    @Option(name: .customLong("control-plane"), help: "Discovery address of the control plane, HOST:PORT.")
    var controlPlane: String = "127.0.0.1:15010"

    @Option(name: .customLong("control-plane-ca"),
            help: "CA bundle to verify the control plane with; set it to connect over TLS (the control plane's --tls-port).")
    var controlPlaneCA: String?

    @Option(name: .customLong("control-plane-name"), help: "Name the control plane's certificate must carry (default: the host of --control-plane).")
    var controlPlaneName: String?

    @Option(name: .long, help: "This proxy's (workload's) name.")
    var name: String

    @Option(name: .long, help: "Namespace.")
    var namespace: String = "default"

    @Option(name: .long, help: "Labels, comma-separated key=value (e.g. app=reviews,version=v2).")
    var labels: String = ""

    @Option(name: .customLong("service-account"), help: "Service account (identity).")
    var serviceAccount: String = "default"

    @Option(name: .long, help: "Address other proxies use to reach this one.")
    var address: String = "127.0.0.1"

    @Option(name: .customLong("admin-port"), help: "Admin server port (0 picks a free one).")
    var adminPort: Int = 15000

    @Option(name: .customLong("health-port"),
            help: "Health port (Istio: 15021) serving GET /healthz/ready: 200 once the first config from the control plane is applied, else 503 with the reason. 0 disables.")
    var healthPort: Int = 15021

    @Option(name: .customLong("prometheus-port"),
            help: "Port serving GET /stats/prometheus alone, on --address (Istio: 15090). Default: 15090 when it is free (else a warning and none); 0 disables.")
    var prometheusPort: Int?

    @Option(name: .long, help: "Event loops; default: number of cores.")
    var concurrency: Int = System.coreCount

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("drain-timeout"), help: "Seconds to let in-flight requests finish on SIGTERM.")
    var drainTimeout: Double = 5

    @Option(name: .customLong("max-downstream-connections"),
            help: "Open client connections allowed across all listeners; default: half the open-file limit left after 128.")
    var maxDownstreamConnections: Int?

    @Option(name: .customLong("overload-config"),
            help: "YAML or JSON file whose overloadManager section (as in a proxy bootstrap) protects this proxy; read at start.")
    var overloadConfig: String?

    @Option(name: .customLong("tracing-collector"),
            help: "OTLP/HTTP collector for spans, HOST:PORT (Istio's extensionProviders.opentelemetry service and port; spans go to POST /v1/traces). Unset: trace headers are still propagated, no span is exported.")
    var tracingCollector: String?

    @Option(name: .customLong("tracing-sampling"),
            help: "Percent of new traces sampled, 0-100. Wins over the control plane's telemetry (mesh config, Telemetry); unset: theirs, else Istio's default 1. A caller's sampling decision wins.")
    var tracingSampling: Double?

    @Option(name: .customLong("access-log-encoding"),
            help: "Access-log encoding, TEXT (Istio's default format) or JSON (Istio's accessLogEncoding). Wins over the control plane's; unset: theirs, else TEXT.")
    var accessLogEncoding: String?

    @Option(name: .customLong("mesh-id"), help: "Mesh id for spans' istio.mesh_id (Istio's default: the trust domain, cluster.local).")
    var meshID: String = "cluster.local"

    @Option(name: .customLong("token-file"),
            help: "Bootstrap token from `meshd control-plane token`: the proxy asks the control plane for a workload certificate (mTLS identity) with it.")
    var tokenFile: String?

    @Option(name: .customLong("cert-ttl-seconds"),
            help: "Lifetime to ask for the workload certificate (0: the control plane's default, 24 h); it is renewed at half its life.")
    var certTTLSeconds: Int = 0

    /// Istio's merged Prometheus port.
    static let defaultPrometheusPort = 15090

    var labelMap: [String: String] {
        var out: [String: String] = [:]
        for pair in labels.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    /// Tracing facts from the flags and labels, named as Istio derives them.
    func tracing(nodeID: String) throws -> TracingConfig {
        let labels = labelMap
        var collector: OpenTelemetryProvider?
        if let tracingCollector {
            let parts = tracingCollector.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw ValidationError("invalid --tracing-collector \(tracingCollector): want HOST:PORT")
            }
            collector = OpenTelemetryProvider(service: String(parts[0]), port: port)
        }
        if let tracingSampling, !(0...100).contains(tracingSampling) {
            throw ValidationError("invalid --tracing-sampling \(tracingSampling): want 0-100")
        }
        return TracingConfig(
            samplingPercentage: tracingSampling, opentelemetry: collector, meshID: meshID, nodeID: nodeID,
            canonicalService: labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"]
                ?? labels["app"] ?? name,
            canonicalRevision: labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"]
                ?? labels["version"] ?? "latest",
            namespace: namespace)
    }

    /// Starts the runtime with no listeners, the admin server and the discovery client; never returns.
    func run(kind: String, inboundPort: Int, outboundPort: Int, appPort: Int, label: String) throws -> Never {
        let logger = ProcessLogging.bootstrap(level: logLevel, label: label)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, concurrency))
        let runtime: ProxyRuntime
        do {
            let overload = try overloadConfig.flatMap { try BootstrapLoader.load(file: $0).overloadManager }
            let tracing = try tracing(nodeID: "\(kind)~\(address)~\(name).\(namespace)")
            let encoding = try accessLogEncoding.map { flag in
                guard let e = AccessLogEncoding(rawValue: flag.uppercased()) else {
                    throw ValidationError("invalid --access-log-encoding \(flag): want TEXT or JSON")
                }
                return e
            }
            runtime = try ProxyRuntime(group: group, registry: FilterCatalog.registry,
                                       bootstrap: Bootstrap(overloadManager: overload, tracing: tracing,
                                                            accessLogEncoding: encoding), logger: logger,
                                       maxDownstreamConnections: maxDownstreamConnections)
        } catch let e as ConfigError {
            throw ValidationError("invalid --overload-config: \(e.description)")
        }
        try runtime.start()
        // Ready (admin /ready, /healthz/ready) once the control plane's first config is applied.
        let discovery = ClientRef()
        let readiness: Readiness = {
            guard let client = discovery.client else { return "starting" }
            return client.notReadyReason
        }
        let admin: AdminServer
        do {
            let options = ["name": name, "namespace": namespace, "concurrency": "\(concurrency)", "log_level": logLevel,
                           "drain_time_s": "\(drainTimeout)", "control_plane": controlPlane, "admin_port": "\(adminPort)"]
            admin = try AdminServer(runtime: runtime, watcher: nil, host: "127.0.0.1", port: adminPort, readiness: readiness,
                                    process: AdminServer.Process(commandLineOptions: options))
        } catch {
            throw ValidationError("cannot listen on the admin port 127.0.0.1:\(adminPort) (--admin-port): \(error)")
        }
        var health: AdminServer?
        if healthPort > 0 {
            do {
                health = try AdminServer(runtime: runtime, watcher: nil, host: address, port: healthPort,
                                         readiness: readiness, role: .health)
            } catch {
                throw ValidationError("cannot listen on the health port \(address):\(healthPort) (--health-port; 0 disables): \(error)")
            }
        }
        var prometheus: AdminServer?
        let metricsPort = prometheusPort ?? Self.defaultPrometheusPort
        if metricsPort > 0 {
            do {
                prometheus = try AdminServer(runtime: runtime, watcher: nil, host: address, port: metricsPort, role: .prometheus)
            } catch where prometheusPort == nil {
                logger.warning("default Prometheus port busy: no Prometheus port (set --prometheus-port)",
                               metadata: ["port": "\(address):\(metricsPort)", "error": "\(error)"])
            } catch {
                throw ValidationError("cannot listen on the Prometheus port \(address):\(metricsPort) (--prometheus-port; 0 disables): \(error)")
            }
        }
        var node = Meshd_Discovery_V1_Node()
        node.kind = kind
        node.name = name
        node.namespace = namespace
        node.labels = labelMap
        let agent = try tokenFile.map { try CertificateAgent(tokenFile: $0, requestedTTL: Int64(certTTLSeconds), logger: logger) }
        // Istio's endpoint label for "has a sidecar with a mesh certificate": peers use mTLS to it.
        if agent != nil { node.labels["security.istio.io/tlsMode"] = "istio" }
        node.serviceAccount = serviceAccount
        node.address = address
        node.inboundPort = UInt32(inboundPort)
        node.outboundPort = UInt32(outboundPort)
        node.appPort = UInt32(appPort)
        node.adminAddress = "127.0.0.1:\(admin.port ?? adminPort)"
        node.meshdVersion = MeshdVersion.current
        node.id = "\(kind)~\(address)~\(name).\(namespace)"  // as the tracing node_id above
        let tls = try controlPlaneCA.map { try TLSClientContext(caCertificatesFile: $0, verifyPeer: true, alpnProtocols: ["h2"]) }
        let client = try DiscoveryClient(runtime: runtime, node: node, controlPlane: controlPlane, logger: logger,
                                         tls: tls, serverName: controlPlaneName, certificateAgent: agent)
        discovery.client = client
        client.start()
        logger.info("\(kind) started", metadata: ["id": "\(node.id)", "admin": "\(node.adminAddress)",
                                                  "health": "\(health?.port.map { "\(address):\($0)" } ?? "off")",
                                                  "prometheus": "\(prometheus?.port.map { "\(address):\($0)" } ?? "off")"])
        let drainSeconds = drainTimeout
        let healthServer = health
        let prometheusServer = prometheus
        // SIGHUP keeps its "logged and ignored": the config comes from the control plane.
        ProcessLogging.onReopenLogs {
            runtime.flushAccessLogs()
            logger.info("SIGUSR1: access log flushed (it goes to stdout: no file to reopen)")
        }
        ProcessLogging.onTerminate(hardExitAfter: drainSeconds + ProcessLogging.hardExitGraceSeconds) {
            client.stop()
            _ = runtime.drain(timeout: .milliseconds(Int64(drainSeconds * 1000)))
            admin.close()
            healthServer?.close()
            prometheusServer?.close()
            exitProcess(0)
        }
        dispatchMain()
    }
}

/// The discovery client, once made: the admin server that reports readiness starts before it.
private final class ClientRef: @unchecked Sendable {
    private let lock = NIOLock()
    private var value: DiscoveryClient?
    var client: DiscoveryClient? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

struct SidecarCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sidecar",
        abstract: "Run a sidecar proxy whose config comes from the control plane.",
        discussion: """
        The sidecar registers its workload with the control plane (like WorkloadGroup
        auto-registration) and receives its listeners: an inbound listener on --inbound-port
        that fronts the app on 127.0.0.1:--app-port, and an outbound listener on
        --outbound-port that the app uses to reach other services by name (send `Host: reviews`).
        It keeps serving its last good config while the control plane is away.
        """
    )

    @OptionGroup var options: ManagedProxyOptions

    @Option(name: .customLong("app-port"), help: "The local app's port.")
    var appPort: Int

    @Option(name: .customLong("inbound-port"), help: "Inbound listener port (Istio: 15006).")
    var inboundPort: Int = 15006

    @Option(name: .customLong("outbound-port"), help: "Outbound listener port (Istio: 15001).")
    var outboundPort: Int = 15001

    func run() throws {
        try options.run(kind: "sidecar", inboundPort: inboundPort, outboundPort: outboundPort, appPort: appPort,
                        label: "meshd.sidecar")
    }
}

struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run an ingress gateway whose listeners come from the Gateway resources that select it.",
        discussion: """
        Gateway resources whose selector matches --labels (default istio=ingressgateway) give this
        proxy its listeners; VirtualServices bound to those Gateways give its routes.
        """
    )

    @OptionGroup var options: ManagedProxyOptions

    func run() throws {
        try options.run(kind: "gateway", inboundPort: 0, outboundPort: 0, appPort: 0, label: "meshd.gateway")
    }
}
