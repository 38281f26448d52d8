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
import MeshAPI
import NIOCore
import NIOPosix
import Transport
import LuaRuntime
import PluginTesting

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run a proxy from a static bootstrap file.",
        discussion: """
        The bootstrap (YAML or JSON) lists listeners, routeConfigs and clusters; see
        docs/configuration.md. The file is watched: when it changes, the new config is
        validated and swapped in without a restart (POST /reload on the admin port does
        the same now). An invalid config is refused with its reason, in the log and at
        /config_dump, and the last good one keeps serving.

        SIGTERM or SIGINT drains: listeners close, in-flight requests finish (up to
        --drain-timeout), then the process exits 0; one still running 2 s past the drain
        timeout (a stuck event loop) exits 1. SIGHUP re-reads the bootstrap now (as
        POST /reload). SIGUSR1 flushes the access log. The access log goes to stdout, logs
        to stderr.
        """
    )

    @Option(name: .long, help: "Bootstrap file (YAML or JSON).")
    var config: String

    @Option(name: .long, help: "Event loops (worker threads); default: number of cores.")
    var concurrency: Int = System.coreCount

    @Option(name: .customLong("admin-address"), help: "Admin server address.")
    var adminAddress: String = "127.0.0.1"

    @Option(name: .customLong("admin-port"), help: "Admin server port (0 picks a free one; -1 disables). Overrides the bootstrap's admin.port.")
    var adminPort: Int?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("drain-timeout"), help: "Seconds to let in-flight requests finish on SIGTERM.")
    var drainTimeout: Double = 5

    @Option(name: .customLong("watch-interval-ms"), help: "How often the bootstrap file is checked for changes (0 disables).")
    var watchIntervalMs: Int = 500

    @Option(name: .customLong("max-downstream-connections"),
            help: "Open client connections allowed across all listeners; default: half the open-file limit left after 128.")
    var maxDownstreamConnections: Int?

    func run() throws {
        let logger = ProcessLogging.bootstrap(level: logLevel, label: "meshd.proxy")
        let text: String
        let bootstrap: Bootstrap
        do {
            text = try String(contentsOfFile: config, encoding: .utf8)
            bootstrap = try BootstrapLoader.parse(text, file: config)
        } catch let e as ConfigError {
            throw ValidationError("invalid config: \(e.description)")
        } catch {
            throw ValidationError("cannot read \(config): \(error.plainDescription)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, concurrency))
        let runtime: ProxyRuntime
        do {
            runtime = try ProxyRuntime(group: group, registry: FilterCatalog.registry, bootstrap: bootstrap, logger: logger,
                                       maxDownstreamConnections: maxDownstreamConnections)
            try runtime.start()
        } catch let e as ConfigError {
            throw ValidationError("invalid config: \(e.description)")
        } catch {
            throw ValidationError("cannot start: \(error)")
        }
        let watcher = ConfigWatcher(file: config, runtime: runtime, logger: logger, initialText: text)
        if watchIntervalMs > 0 { watcher.start(interval: .milliseconds(Int64(watchIntervalMs))) }
        let port = adminPort ?? bootstrap.admin?.port ?? 15000
        // Signals first: once the admin port answers, a SIGHUP must already reload.
        ProcessLogging.onReload {
            switch watcher.reload(force: true) {
            case .success(let version): logger.info("SIGHUP: bootstrap re-read", metadata: ["version": "\(version)"])
            case .failure(let e): logger.error("SIGHUP: bootstrap refused", metadata: ["reason": "\(e.description)"])
            case nil: logger.info("SIGHUP: bootstrap re-read, unchanged")
            }
        }
        ProcessLogging.onReopenLogs {
            runtime.flushAccessLogs()
            logger.info("SIGUSR1: access log flushed (it goes to stdout: no file to reopen)")
        }
        var admin: AdminServer?
        if port >= 0 {
            let options = ["config": config, "concurrency": "\(concurrency)", "log_level": logLevel,
                           "drain_time_s": "\(drainTimeout)", "admin_port": "\(port)"]
            admin = try AdminServer(runtime: runtime, watcher: watcher,
                                    host: bootstrap.admin?.address ?? adminAddress, port: port,
                                    process: AdminServer.Process(commandLineOptions: options))
            logger.info("admin listening", metadata: ["port": "\(admin?.port ?? 0)"])
        }
        let drainSeconds = drainTimeout
        let adminServer = admin
        ProcessLogging.onTerminate(hardExitAfter: drainSeconds + ProcessLogging.hardExitGraceSeconds) {
            logger.info("draining", metadata: ["timeout_s": "\(drainSeconds)"])
            let clean = runtime.drain(timeout: .milliseconds(Int64(drainSeconds * 1000)))
            logger.info("drained", metadata: ["clean": "\(clean)"])
            adminServer?.close()
            exitProcess(0)
        }
        dispatchMain()
    }
}
