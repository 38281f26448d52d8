import FilterHost
import MeshAPI

/// `meshd.fault` (Envoy's HTTPFault with fixed values): on the listener and, with the same
/// shape, per route, where the route's config replaces the listener's.
///
///     delay: {fixedDelayMs: 7000, percentage: 100}
///     abort: {httpStatus: 503, percentage: 0.1}   # or grpcStatus: 14
///
/// `percentage` is 0-100 with fractions (Istio's `Percent`), kept per million as Envoy's
/// FractionalPercent; absent means 0 (Envoy's default), so nothing is injected.
struct FaultConfig: Sendable, Equatable {
    static let name = "meshd.fault"

    struct Delay: Sendable, Equatable {
        let duration: Int64
        let perMillion: UInt32
    }

    enum AbortStatus: Sendable, Equatable {
        case http(Int)
        /// Answered as a gRPC trailers-only response to a gRPC request (HTTP 200 otherwise).
        case grpc(Int)
    }

    struct Abort: Sendable, Equatable {
        let status: AbortStatus
        let perMillion: UInt32
    }

    let delay: Delay?
    let abort: Abort?

    init(delay: Delay? = nil, abort: Abort? = nil) {
        self.delay = delay
        self.abort = abort
    }

    init(_ config: JSONValue?) throws {
        guard let config else {
            self.init()
            return
        }
        guard let o = config.objectValue else { throw ConfigError(path: "", reason: "must be a map") }
        try Self.known(o, ["delay", "abort"], at: "")
        var delay: Delay?
        if let d = o["delay"] {
            guard let fields = d.objectValue else { throw ConfigError(path: "delay", reason: "must be a map") }
            try Self.known(fields, ["fixedDelayMs", "percentage"], at: "delay.")
            guard let ms = fields["fixedDelayMs"]?.asNumber, ms >= 0, ms == ms.rounded() else {
                throw ConfigError(path: "delay.fixedDelayMs", reason: "a whole number of milliseconds is required")
            }
            delay = Delay(duration: Int64(ms), perMillion: try Self.perMillion(fields["percentage"], at: "delay.percentage"))
        }
        var abort: Abort?
        if let a = o["abort"] {
            guard let fields = a.objectValue else { throw ConfigError(path: "abort", reason: "must be a map") }
            try Self.known(fields, ["httpStatus", "grpcStatus", "percentage"], at: "abort.")
            let status: AbortStatus
            switch (fields["httpStatus"]?.asNumber, fields["grpcStatus"]?.asNumber) {
            case (let http?, nil):
                guard (200...599).contains(http), http == http.rounded() else {
                    throw ConfigError(path: "abort.httpStatus", reason: "must be a status in 200-599")
                }
                status = .http(Int(http))
            case (nil, let grpc?):
                guard (0...16).contains(grpc), grpc == grpc.rounded() else {
                    throw ConfigError(path: "abort.grpcStatus", reason: "must be a gRPC status code (0-16)")
                }
                status = .grpc(Int(grpc))
            default:
                throw ConfigError(path: "abort", reason: "exactly one of httpStatus or grpcStatus is required")
            }
            abort = Abort(status: status, perMillion: try Self.perMillion(fields["percentage"], at: "abort.percentage"))
        }
        self.init(delay: delay, abort: abort)
    }

    private static func known(_ o: [String: JSONValue], _ names: [String], at path: String) throws {
        for key in o.keys.sorted() where !names.contains(key) {
            throw ConfigError(path: path + key, reason: "unknown field (known: \(names.joined(separator: ", ")))")
        }
    }

    private static func perMillion(_ v: JSONValue?, at path: String) throws -> UInt32 {
        guard let v else { return 0 }
        guard let p = v.asNumber, (0...100).contains(p) else {
            throw ConfigError(path: path, reason: "must be a number from 0 to 100")
        }
        return UInt32((p * 10_000).rounded())
    }
}

/// Makes the filter for each stream; the per-route config is parsed once per snapshot.
struct FaultFactory: HTTPFilterFactory {
    let config: FaultConfig

    static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        FaultFactory(config: try FaultConfig(config))
    }

    static func parsePerRoute(_ config: JSONValue) throws -> any Sendable { try FaultConfig(config) }

    func makeFilter(stream: StreamControl) -> HTTPFilter { FaultFilter(config: config, stream: stream) }
}
