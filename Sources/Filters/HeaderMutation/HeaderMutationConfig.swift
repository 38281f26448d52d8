import FilterHost
import MeshAPI

/// `meshd.header_mutation`: `{request: {set: {k: v}, add: {k: v}, remove: [k]}, response: {...}}`,
/// on the listener and, with the same shape, per route (applied after the listener's).
struct HeaderMutationConfig: Sendable {
    static let name = "meshd.header_mutation"

    let operations: HeaderOperations

    init(_ config: JSONValue?) throws {
        guard let config else {
            operations = HeaderOperations()
            return
        }
        guard config.objectValue != nil else { throw ConfigError(path: "", reason: "must be a map") }
        for key in config.objectValue!.keys.sorted() where key != "request" && key != "response" {
            throw ConfigError(path: key, reason: "unknown field (known: request, response)")
        }
        operations = HeaderOperations(request: try Self.mutation(config["request"], at: "request"),
                                      response: try Self.mutation(config["response"], at: "response"))
    }

    private static func mutation(_ v: JSONValue?, at path: String) throws -> HeaderMutation? {
        guard let v else { return nil }
        guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map") }
        for key in o.keys.sorted() where !["set", "add", "remove"].contains(key) {
            throw ConfigError(path: "\(path).\(key)", reason: "unknown field (known: set, add, remove)")
        }
        let remove = try o["remove"].map { list in
            try (list.arrayValue ?? [.null]).map {
                guard let s = $0.stringValue else { throw ConfigError(path: path + ".remove", reason: "must be a list of strings") }
                return s
            }
        }
        return HeaderMutation(set: try pairs(o["set"], at: path + ".set"), add: try pairs(o["add"], at: path + ".add"),
                              remove: remove)
    }

    private static func pairs(_ v: JSONValue?, at path: String) throws -> [String: String]? {
        guard let v else { return nil }
        guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map of strings") }
        var result: [String: String] = [:]
        for (k, value) in o {
            guard let s = value.stringValue else { throw ConfigError(path: "\(path).\(k)", reason: "must be a string") }
            result[k] = s
        }
        return result
    }
}

/// Makes the filter for each stream; the per-route config is parsed once per snapshot.
struct HeaderMutationFactory: HTTPFilterFactory {
    let config: HeaderMutationConfig

    static func build(_ config: JSONValue?) throws -> HTTPFilterFactory {
        HeaderMutationFactory(config: try HeaderMutationConfig(config))
    }

    static func parsePerRoute(_ config: JSONValue) throws -> any Sendable { try HeaderMutationConfig(config) }

    func makeFilter(stream: StreamControl) -> HTTPFilter { HeaderMutationFilter(config: config, stream: stream) }
}
