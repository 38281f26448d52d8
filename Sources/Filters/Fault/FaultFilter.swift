import FilterHost
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Injects a delay and/or an abort into requests, as Envoy's fault filter with fixed values:
/// the delay first (the request waits on a loop timer, flag `DI`), then — decided afresh —
/// the abort (a local reply with body "fault filter abort", flag `FI`). The route's config
/// replaces the listener's.
final class FaultFilter: HTTPFilter, TimerTarget {
    static let delaysKey = "meshd_fault_delays_injected_total"
    static let abortsKey = "meshd_fault_aborts_injected_total"
    static let abortBody = "fault filter abort"

    private enum State {
        case idle
        case delaying(LoopTimers.Token, FaultConfig, isGRPC: Bool)
        case done
    }

    private let config: FaultConfig
    private unowned let stream: StreamControl
    private var state = State.idle

    init(config: FaultConfig, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        guard case .idle = state else { return .continue }
        let fault = stream.perRouteConfig(FaultConfig.name, for: head) as? FaultConfig ?? config
        let isGRPC = head.headers.first(name: "content-type")?.lowercased().hasPrefix("application/grpc") ?? false
        if let delay = fault.delay, delay.duration > 0, Self.fires(delay.perMillion) {
            stream.streamInfo.addFlag(.delayInjected)
            stream.stats?.count(Self.delaysKey, 1)
            let token = stream.timers.arm(after: .milliseconds(delay.duration), self)
            state = .delaying(token, fault, isGRPC: isGRPC)
            // Held until the timer fires: the body waits behind the headers.
            return .stop
        }
        state = .done
        return abortIfChosen(fault, isGRPC: isGRPC) ? .stop : .continue
    }

    func timerFired(_ token: LoopTimers.Token) {
        guard case .delaying(let armed, let fault, let isGRPC) = state, armed == token else { return }
        state = .done
        if !abortIfChosen(fault, isGRPC: isGRPC) { stream.continueRequest(from: self) }
    }

    func onStreamComplete() {
        if case .delaying(let token, _, _) = state { stream.timers.cancel(token) }
        state = .done
    }

    /// Sends the abort when the fault has one and the roll chooses it.
    private func abortIfChosen(_ fault: FaultConfig, isGRPC: Bool) -> Bool {
        guard let abort = fault.abort, Self.fires(abort.perMillion) else { return false }
        stream.stats?.count(Self.abortsKey, 1)
        let reply = Self.reply(abort.status, isGRPC: isGRPC)
        stream.sendLocalReply(status: reply.status, body: reply.body, headers: reply.headers, flag: .faultInjected, from: self)
        return true
    }

    /// Envoy's local reply for the abort: a gRPC request gets a trailers-only response
    /// (HTTP 200, `grpc-status` — the configured one, else mapped from the HTTP status — and
    /// the body as `grpc-message`); anything else the HTTP status (200 for a gRPC-only abort).
    static func reply(_ status: FaultConfig.AbortStatus, isGRPC: Bool) -> (status: Int, body: String, headers: HTTPHeaders) {
        let http: Int
        let grpc: Int
        switch status {
        case .http(let code): (http, grpc) = (code, GRPCStatusMapping.fromHTTP(code))
        case .grpc(let code): (http, grpc) = (200, code)
        }
        guard isGRPC else { return (http, abortBody, [:]) }
        let headers: HTTPHeaders = [
            "content-type": "application/grpc",
            "grpc-status": String(grpc),
            // Printable ASCII: gRPC's percent-encoding leaves it as it is.
            "grpc-message": abortBody,
        ]
        return (200, "", headers)
    }

    /// A roll against a per-million chance (Envoy's FractionalPercent with a MILLION denominator).
    static func fires(_ perMillion: UInt32) -> Bool {
        perMillion >= 1_000_000 || (perMillion > 0 && UInt32.random(in: 0..<1_000_000) < perMillion)
    }
}

/// gRPC's mapping from an HTTP status to a gRPC status, as Envoy applies it to local replies
/// to gRPC requests (grpc/doc/http-grpc-status-mapping.md).
enum GRPCStatusMapping {
    static func fromHTTP(_ status: Int) -> Int {
        switch status {
        case 400: 13 // INTERNAL
        case 401: 16 // UNAUTHENTICATED
        case 403: 7 // PERMISSION_DENIED
        case 404: 12 // UNIMPLEMENTED
        case 429, 502, 503, 504: 14 // UNAVAILABLE
        default: 2 // UNKNOWN
        }
    }
}
