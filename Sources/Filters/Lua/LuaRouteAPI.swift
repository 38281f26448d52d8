import CLua
import MeshAPI
import FilterHost
import LuaRuntime

/// metadata(), route():metadata() and virtualHost():metadata(): the `metadata` map of the
/// route's (aux 0) or virtual host's (aux 1) `perFilterConfig` entry for this plugin, under
/// the plugin's name or else `meshd.lua` (Envoy: the filter config name, else
/// `envoy.filters.http.lua`, in `metadata.filter_metadata`).
package enum LuaRouteAPI {
    package static var routeMethods: [(String, LuaHostFn)] {
        [("metadata", { L in LuaObjects.host(L) { L in try LuaRouteAPI.metadataObject(L, from: .route, aux: 0) } })]
    }

    package static var virtualHostMethods: [(String, LuaHostFn)] {
        [("metadata", { L in LuaObjects.host(L) { L in try LuaRouteAPI.metadataObject(L, from: .virtualHost, aux: 1) } })]
    }

    package static var metadataMethods: [(String, LuaHostFn)] {
        [
            ("get", { L in LuaObjects.host(L) { L in try LuaRouteAPI.get(L) } }),
            ("pairs", { L in LuaObjects.host(L) { L in try LuaRouteAPI.pairs(L) } }),
            ("__pairs", { L in LuaObjects.host(L) { L in try LuaRouteAPI.pairs(L) } }),
        ]
    }

    private static func metadataObject(_ L: OpaquePointer, from kind: LuaKind, aux: UInt64) throws -> Int32 {
        LuaObjects.push(L, try LuaObjects.scope(L, kind), .metadata, aux: aux)
        return 1
    }

    private static func metadata(_ s: LuaScope) -> [String: JSONValue] {
        guard let route = s.filter.currentRoute else { return [:] }
        let config = s.obj.pointee.aux == 1 ? route.hostFilterConfig : route.route.perFilterConfig
        guard let config else { return [:] }
        return config[s.vm.plugin.name]?["metadata"]?.objectValue
            ?? config[LuaFilterFactory.name]?["metadata"]?.objectValue ?? [:]
    }

    package static func get(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .metadata)
        let key = try LuaObjects.checkString(L, 2)
        if let v = metadata(s)[key] { LuaJSON.push(L, v) } else { lua_pushnil(L) }
        return 1
    }

    package static func pairs(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .metadata)
        LuaJSON.push(L, .object(metadata(s)))
        return LuaStreamInfoAPI.pushNext(L)
    }
}
