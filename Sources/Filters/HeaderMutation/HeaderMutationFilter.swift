import FilterHost
import MeshAPI
import NIOHTTP1
import Transport
import LuaRuntime

/// Sets, adds and removes request and response headers (Istio's `headers` block).
/// Config: `{request: {set: {k: v}, add: {k: v}, remove: [k]}, response: {...}}`.
final class HeaderMutationFilter: HTTPFilter {
    static let name = "meshd.header_mutation"

    struct Mutation: Sendable {
        var set: [(String, String)] = []
        var add: [(String, String)] = []
        var remove: [String] = []

        init(_ v: JSONValue?, at path: String) throws {
            guard let v else { return }
            guard v.objectValue != nil else { throw ConfigError(path: path, reason: "must be a map") }
            set = try Self.pairs(v["set"], at: path + ".set")
            add = try Self.pairs(v["add"], at: path + ".add")
            remove = try (v["remove"]?.arrayValue ?? []).map {
                guard let s = $0.stringValue else { throw ConfigError(path: path + ".remove", reason: "must be a list of strings") }
                return s
            }
        }

        static func pairs(_ v: JSONValue?, at path: String) throws -> [(String, String)] {
            guard let v else { return [] }
            guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map of strings") }
            return try o.keys.sorted().map { k in
                guard let s = o[k]?.stringValue else { throw ConfigError(path: "\(path).\(k)", reason: "must be a string") }
                return (k, s)
            }
        }

        func apply(to headers: inout HTTPHeaders) {
            for name in remove { headers.remove(name: name) }
            for (k, v) in set { headers.replaceOrAdd(name: k, value: v) }
            for (k, v) in add { headers.add(name: k, value: v) }
        }
    }

    struct Factory: HTTPFilterFactory {
        let request: Mutation
        let response: Mutation

        static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
            Factory(request: try Mutation(config?["request"], at: "request"),
                    response: try Mutation(config?["response"], at: "response"))
        }

        func makeFilter(stream: StreamControl) -> HTTPFilter { HeaderMutationFilter(self) }
    }

    private let config: Factory

    init(_ config: Factory) { self.config = config }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        config.request.apply(to: &head.headers)
        return .continue
    }

    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        config.response.apply(to: &head.headers)
        return .continue
    }
}
