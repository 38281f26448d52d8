import NIOHTTP1

/// What a request shed by stop_accepting_requests gets: Envoy's 503 body `envoy overloaded`.
/// `x-envoy-overloaded: true` tells a calling meshd or Envoy not to retry the request
/// (Envoy's router does not retry an answer that carries it); Envoy itself marks its own
/// overload replies with `x-envoy-local-overloaded`, and only with `append_local_overload`.
enum OverloadReply {
    static let body = "envoy overloaded"
    static let headers: HTTPHeaders = ["x-envoy-overloaded": "true"]
}
