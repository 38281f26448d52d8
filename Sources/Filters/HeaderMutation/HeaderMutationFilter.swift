import FilterHost
import MeshAPI
import Transport

/// Sets, adds and removes request and response headers (Istio's `headers` block, Envoy's
/// header_mutation filter): the listener's changes, then the route's if it has its own.
final class HeaderMutationFilter: HTTPFilter {
    private let config: HeaderMutationConfig
    private unowned let stream: StreamControl
    private var routeConfig: HeaderMutationConfig?

    init(config: HeaderMutationConfig, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        config.operations.request?.apply(to: &head.headers)
        routeConfig = stream.perRouteConfig(HeaderMutationConfig.name, for: head) as? HeaderMutationConfig
        routeConfig?.operations.request?.apply(to: &head.headers)
        return .continue
    }

    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        config.operations.response?.apply(to: &head.headers)
        routeConfig?.operations.response?.apply(to: &head.headers)
        return .continue
    }
}
