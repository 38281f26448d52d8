#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Logging
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// The version a proxy reports at admin `/server_info`.
public enum ServerVersion {
    public static let current = "meshd/0.1.0-dev"
}

/// One admin request: method, path and its query parameters.
struct AdminRequest {
    let method: HTTPMethod
    let path: String
    let query: QueryString
    let body: String?

    init(method: HTTPMethod, uri: String, body: String?) {
        self.method = method
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts.first ?? "")
        query = QueryString(parts.count > 1 ? parts[1] : "")
        self.body = body
    }
}

/// An admin page's answer; `afterSent` runs once it is written (POST /quitquitquit ends the
/// process only after the client has its "OK").
struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var body: String
    var contentType: String
    var afterSent: (@Sendable () -> Void)?

    init(_ status: HTTPResponseStatus, _ body: String, type: String = "text/plain; charset=UTF-8",
         afterSent: (@Sendable () -> Void)? = nil) {
        self.status = status
        self.body = body
        self.contentType = type
        self.afterSent = afterSent
    }

    static let json = "application/json"
}

/// The admin pages, Envoy's names and behaviour: a mutating page answers only POST (GET:
/// 405 `Method GET not allowed, POST required.`), an unknown path 404 with the help listing.
struct AdminEndpoints {
    let runtime: ProxyRuntime
    let watcher: ConfigWatcher?
    let readiness: Readiness
    let process: AdminServer.Process

    struct Endpoint {
        let path: String
        let help: String
        let mutates: Bool
    }

    /// Every page, with Envoy's one-line help where Envoy has the page.
    static let table: [Endpoint] = [
        Endpoint(path: "/", help: "print out list of admin commands", mutates: false),
        Endpoint(path: "/certs", help: "print certs on machine", mutates: false),
        Endpoint(path: "/clusters", help: "upstream cluster status (?format=json)", mutates: false),
        Endpoint(path: "/config", help: "apply a bootstrap (YAML or JSON body) as the new config", mutates: true),
        Endpoint(path: "/config_dump", help: "dump current configs (?resource=listeners|routeConfigs|clusters|…)", mutates: false),
        Endpoint(path: "/drain_listeners", help: "drain listeners (?graceful: also ask open connections to close)", mutates: true),
        Endpoint(path: "/healthcheck/fail", help: "cause the server to fail health checks", mutates: true),
        Endpoint(path: "/healthcheck/ok", help: "cause the server to pass health checks", mutates: true),
        Endpoint(path: "/healthz/ready", help: "print server state, return 200 if LIVE, otherwise return 503 (Istio's path)", mutates: false),
        Endpoint(path: "/help", help: "print out list of admin commands", mutates: false),
        Endpoint(path: "/listeners", help: "print listener info (?format=json)", mutates: false),
        Endpoint(path: "/logging", help: "query (GET) or change (POST ?level=<level> or ?<logger>=<level>) logging levels", mutates: false),
        Endpoint(path: "/overload", help: "print overload manager state", mutates: false),
        Endpoint(path: "/quitquitquit", help: "exit the server", mutates: true),
        Endpoint(path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", mutates: false),
        Endpoint(path: "/reload", help: "re-read the bootstrap file now", mutates: true),
        Endpoint(path: "/reset_counters", help: "reset all counters to zero", mutates: true),
        Endpoint(path: "/server_info", help: "print server version/status information", mutates: false),
        Endpoint(path: "/stats", help: "print server stats (?format=json, ?filter=<RE2 regex>)", mutates: false),
        Endpoint(path: "/stats/prometheus", help: "print server stats in prometheus format (?filter=<RE2 regex>)", mutates: false),
    ]

    static var help: String {
        var out = "admin commands are:\n"
        for e in table.sorted(by: { $0.path < $1.path }) {
            out += "  \(e.path)\(e.mutates ? " (POST)" : ""): \(e.help)\n"
        }
        return out
    }

    func answer(_ request: AdminRequest, on loop: EventLoop) -> EventLoopFuture<AdminResponse> {
        func now(_ response: AdminResponse) -> EventLoopFuture<AdminResponse> { loop.makeSucceededFuture(response) }
        guard let endpoint = Self.table.first(where: { $0.path == request.path }) else {
            return now(AdminResponse(.notFound, "invalid path. " + Self.help))
        }
        // `/logging` reads on GET; a change is a mutation (Envoy's /logging is POST only).
        let mutates = endpoint.mutates || (endpoint.path == "/logging" && !request.query.all.isEmpty)
        if mutates, request.method != .POST {
            return now(AdminResponse(.methodNotAllowed, "Method \(request.method.rawValue) not allowed, POST required."))
        }
        switch endpoint.path {
        case "/", "/help": return now(AdminResponse(.ok, Self.help))
        case "/ready", "/healthz/ready": return now(ready())
        case "/server_info": return now(AdminResponse(.ok, AdminPages.serverInfo(runtime, state: state(), process: process),
                                                      type: AdminResponse.json))
        case "/stats", "/stats/prometheus": return stats(request, on: loop)
        case "/overload":
            return runtime.collectStats().hop(to: loop).map { [runtime] stats in
                AdminResponse(.ok, OverloadPage.json(runtime.overload.current, stats: stats), type: AdminResponse.json)
            }
        case "/clusters":
            let json = request.query.first("format") == "json"
            return runtime.collectStats().hop(to: loop).map { [runtime] stats in
                let clusters = runtime.snapshot.bootstrap.clusters
                return json ? AdminResponse(.ok, AdminPages.clustersJSON(clusters, hosts: stats.hosts), type: AdminResponse.json)
                    : AdminResponse(.ok, AdminPages.clusters(clusters, hosts: stats.hosts))
            }
        case "/listeners":
            let listeners = runtime.listenerAddresses
            return now(request.query.first("format") == "json"
                ? AdminResponse(.ok, AdminPages.listenersJSON(listeners), type: AdminResponse.json)
                : AdminResponse(.ok, AdminPages.listeners(listeners)))
        case "/config_dump":
            guard let dump = AdminPages.configDump(runtime, resource: request.query.first("resource")) else {
                return now(AdminResponse(.notFound, "\(request.query.first("resource") ?? "") not found in config dump\n"))
            }
            return now(AdminResponse(.ok, dump, type: AdminResponse.json))
        case "/certs":
            return now(AdminResponse(.ok, AdminPages.certificates(WorkloadCertificates.shared.current), type: AdminResponse.json))
        case "/logging": return now(logging(request))
        case "/healthcheck/fail", "/healthcheck/ok":
            runtime.setHealthCheckFailed(endpoint.path == "/healthcheck/fail")
            return now(AdminResponse(.ok, "OK\n"))
        case "/drain_listeners":
            runtime.stopListeners(drainConnections: request.query.first("graceful") != nil)
            return now(AdminResponse(.ok, "OK\n"))
        case "/quitquitquit":
            return now(AdminResponse(.ok, "OK\n", afterSent: process.quit))
        case "/reset_counters":
            return runtime.resetCounters().hop(to: loop).map { AdminResponse(.ok, "OK\n") }
        case "/reload":
            guard let watcher else { return now(AdminResponse(.badRequest, "no config file to reload\n")) }
            return applyOffLoop(loop) { watcher.reload(force: true) }
        case "/config":
            let text = request.body ?? ""
            return applyOffLoop(loop) { [runtime] in
                do { return runtime.apply(try BootstrapLoader.parse(text, file: "POST /config")) }
                catch let e as ConfigError { return runtime.refuseExternally(e) }
                catch { return runtime.refuseExternally(ConfigError(path: "", reason: "\(error)")) }
            }
        default:
            return now(AdminResponse(.notFound, "invalid path. " + Self.help))
        }
    }

    /// Envoy's server states: INITIALIZING while the first config is awaited, DRAINING once
    /// draining or failed by /healthcheck/fail, else LIVE.
    enum ServerState: String {
        case initializing = "INITIALIZING"
        case live = "LIVE"
        case draining = "DRAINING"
    }

    func state() -> (ServerState, reason: String?) {
        if runtime.isDraining { return (.draining, "draining") }
        if runtime.isHealthCheckFailed { return (.draining, "health check failed by /healthcheck/fail") }
        if let waiting = readiness() { return (.initializing, waiting) }
        return (.live, nil)
    }

    private func ready() -> AdminResponse {
        switch state() {
        case (.live, _): AdminResponse(.ok, "LIVE\n")
        case (.initializing, let why): AdminResponse(.serviceUnavailable, "INITIALIZING: \(why ?? "")\n")
        case (.draining, _): AdminResponse(.serviceUnavailable, "DRAINING\n")
        }
    }

    private func stats(_ request: AdminRequest, on loop: EventLoop) -> EventLoopFuture<AdminResponse> {
        var filter: RE2Regex?
        if let pattern = request.query.first("filter"), !pattern.isEmpty {
            do { filter = try RE2Regex(pattern) } catch {
                return loop.makeSucceededFuture(AdminResponse(.badRequest, "Invalid re2 regex: \(pattern)\n"))
            }
        }
        let json = request.path == "/stats" && request.query.first("format") == "json"
        return runtime.collectStats().hop(to: loop).map { [runtime, filter] stats in
            let all = AdminPages.metrics(stats, runtime: runtime)
            let kept = filter.map { all.filtered(by: $0) } ?? all
            return json ? AdminResponse(.ok, kept.json, type: AdminResponse.json)
                : AdminResponse(.ok, kept.prometheus, type: "text/plain; version=0.0.4")
        }
    }

    /// GET: the loggers and their levels; POST `?level=L` sets all, `?<logger>=L` one.
    private func logging(_ request: AdminRequest) -> AdminResponse {
        let levels = LogLevels.shared
        var error: String?
        for (name, value) in request.query.all {
            guard let level = LogLevels.parse(value) else {
                error = "unknown logger level \(value)"
                break
            }
            if name == "level" {
                levels.setAll(level)
            } else if !levels.set(name, level) {
                error = "unknown logger name \(name)"
                break
            }
        }
        var out = ""
        if let error {
            out += "error: \(error)\n\n"
            out += "usage: /logging?<name>=<level> (change single level)\n"
            out += "usage: /logging?level=<level> (change all levels)\n"
            out += "levels: \(LogLevels.names.joined(separator: " ")) \n"
        }
        out += "active loggers:\n"
        for (label, level) in levels.listing { out += "  \(label): \(level.rawValue)\n" }
        return AdminResponse(error == nil ? .ok : .badRequest, out)
    }

    /// Builds and applies a config on a background queue (compiling plugins, binding
    /// listeners and waiting for them must not stall this event loop), then answers here.
    private func applyOffLoop(_ loop: EventLoop, _ apply: @escaping @Sendable () -> Result<Int, ConfigError>?)
        -> EventLoopFuture<AdminResponse> {
        let promise = loop.makePromise(of: AdminResponse.self)
        DispatchQueue.global().async {
            let result = apply()
            promise.succeed(AdminResponse(AdminPages.status(of: result), AdminPages.describe(result)))
        }
        return promise.futureResult
    }
}
