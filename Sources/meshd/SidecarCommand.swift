import ArgumentParser
import Dispatch
import FilterHost
import Filters
import Foundation
import Logging
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

    @Option(name: .long, help: "Event loops; default: number of cores.")
    var concurrency: Int = System.coreCount

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("drain-timeout"), help: "Seconds to let in-flight requests finish on SIGTERM.")
    var drainTimeout: Double = 5

    var labelMap: [String: String] {
        var out: [String: String] = [:]
        for pair in labels.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    /// Starts the runtime with no listeners, the admin server and the discovery client; never returns.
    func run(kind: String, inboundPort: Int, outboundPort: Int, appPort: Int, label: String) throws -> Never {
        let logger = ProcessLogging.bootstrap(level: logLevel, label: label)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, concurrency))
        let runtime = try ProxyRuntime(group: group, registry: FilterCatalog.registry, bootstrap: Bootstrap(), logger: logger)
        try runtime.start()
        let admin = try AdminServer(runtime: runtime, watcher: nil, host: "127.0.0.1", port: adminPort)
        var node = Meshd_Discovery_V1_Node()
        node.kind = kind
        node.name = name
        node.namespace = namespace
        node.labels = labelMap
        node.serviceAccount = serviceAccount
        node.address = address
        node.inboundPort = UInt32(inboundPort)
        node.outboundPort = UInt32(outboundPort)
        node.appPort = UInt32(appPort)
        node.adminAddress = "127.0.0.1:\(admin.port ?? adminPort)"
        node.id = "\(kind)~\(address)~\(name).\(namespace)"
        let tls = try controlPlaneCA.map { try TLSClientContext(caCertificatesFile: $0, verifyPeer: true, alpnProtocols: ["h2"]) }
        let client = try DiscoveryClient(runtime: runtime, node: node, controlPlane: controlPlane, logger: logger,
                                         tls: tls, serverName: controlPlaneName)
        client.start()
        logger.info("\(kind) started", metadata: ["id": "\(node.id)", "admin": "\(node.adminAddress)"])
        let drainSeconds = drainTimeout
        ProcessLogging.onTerminate(hardExitAfter: drainSeconds + ProcessLogging.hardExitGraceSeconds) {
            client.stop()
            _ = runtime.drain(timeout: .milliseconds(Int64(drainSeconds * 1000)))
            admin.close()
            Foundation.exit(0)
        }
        dispatchMain()
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
