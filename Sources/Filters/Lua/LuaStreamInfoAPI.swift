import CLua
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore
import FilterHost
import Transport
import LuaRuntime

/// streamInfo(), its dynamicMetadata() and filterState().
package enum LuaStreamInfoAPI {
    package static var methods: [(String, LuaHostFn)] {
        [
            ("protocol", { L in
                LuaStreamInfoAPI.info(L) { s in s.filter.stream.streamInfo.protocolVersion.rawValue }
            }),
            ("routeName", { L in LuaStreamInfoAPI.info(L) { s in s.filter.currentRoute?.name ?? "" } }),
            ("virtualClusterName", { L in LuaStreamInfoAPI.info(L) { _ in "" } }),
            ("requestedServerName", { L in
                LuaStreamInfoAPI.info(L) { s in s.filter.stream.connectionInfo.serverName ?? "" }
            }),
            ("downstreamLocalAddress", { L in
                LuaStreamInfoAPI.info(L) { s in LuaStreamInfoAPI.format(s.filter.stream.connectionInfo.localAddress) }
            }),
            // meshd has no original-destination rewrite of the local address: both are the socket's.
            ("downstreamDirectLocalAddress", { L in
                LuaStreamInfoAPI.info(L) { s in LuaStreamInfoAPI.format(s.filter.stream.connectionInfo.localAddress) }
            }),
            ("downstreamDirectRemoteAddress", { L in
                LuaStreamInfoAPI.info(L) { s in LuaStreamInfoAPI.format(s.filter.stream.connectionInfo.remoteAddress) }
            }),
            ("downstreamRemoteAddress", { L in LuaStreamInfoAPI.info(L) { s in LuaStreamInfoAPI.remoteAddress(s) } }),
            ("dynamicMetadata", { L in
                LuaObjects.host(L) { L in LuaObjects.push(L, try LuaObjects.scope(L, .streamInfo), .dynamicMetadata); return 1 }
            }),
            ("filterState", { L in
                LuaObjects.host(L) { L in LuaObjects.push(L, try LuaObjects.scope(L, .streamInfo), .filterState); return 1 }
            }),
            ("downstreamSslConnection", { L in LuaObjects.host(L) { L in try LuaConnectionAPI.ssl(L, from: .streamInfo) } }),
            ("drainConnectionUponCompletion", { L in
                LuaObjects.host(L) { L in
                    try LuaObjects.scope(L, .streamInfo).filter.stream.drainConnectionUponCompletion()
                    return 0
                }
            }),
        ]
    }

    package static var dynamicMetadataMethods: [(String, LuaHostFn)] {
        [
            ("get", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicGet(L) } }),
            ("set", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicSet(L) } }),
            ("pairs", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicPairs(L) } }),
            ("__pairs", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicPairs(L) } }),
        ]
    }

    package static var filterStateMethods: [(String, LuaHostFn)] {
        [("get", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.filterStateGet(L) } })]
    }

    /// A string-valued method on an object of `kind`.
    static func info(_ L: OpaquePointer?, _ kind: LuaKind = .streamInfo, _ value: (LuaScope) -> String) -> Int32 {
        LuaObjects.host(L) { L in
            LuaObjects.push(L, value(try LuaObjects.scope(L, kind)))
            return 1
        }
    }

    package static func format(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress else { return "" }
        let port = address.port ?? 0
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }

    /// Envoy's downstreamRemoteAddress: the left-most x-forwarded-for entry when present ("ip:0").
    package static func remoteAddress(_ s: LuaScope) -> String {
        let f = s.filter
        let xff = f.req.active ? f.reqHead.headers.first(name: "x-forwarded-for") : f.stream.streamInfo.forwardedFor
        if let xff, let first = xff.split(separator: ",").first {
            let ip = first.trimmed
            if !ip.isEmpty { return ip.contains(":") ? "[\(ip)]:0" : "\(ip):0" }
        }
        return format(f.stream.connectionInfo.remoteAddress)
    }

    // MARK: dynamic metadata (StreamInfo.dynamicMetadata: namespace → key → typed value)

    package static func dynamicGet(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .dynamicMetadata)
        let ns = try LuaObjects.checkString(L, 2)
        guard let values = s.filter.stream.streamInfo.dynamicMetadata[ns] else { lua_pushnil(L); return 1 }
        LuaMetadataValue.push(L, .object(values))
        return 1
    }

    /// set(namespace, key, value): a string, number, boolean, nil or table (of those), kept with its type.
    package static func dynamicSet(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .dynamicMetadata)
        let ns = try LuaObjects.checkString(L, 2)
        let key = try LuaObjects.checkString(L, 3)
        let value = try LuaMetadataValue.read(L, 4)
        try s.filter.setDynamicMetadata(ns, key, value)
        return 0
    }

    /// Iterates `namespace, table` over a snapshot.
    package static func dynamicPairs(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .dynamicMetadata)
        let all = s.filter.stream.streamInfo.dynamicMetadata
        lua_createtable(L, 0, Int32(all.count))
        for (ns, values) in all {
            LuaMetadataValue.push(L, .object(values))
            lua_setfield(L, -2, ns)
        }
        return pushNext(L)
    }

    /// Returns `next, table, nil` for the table on top: a generic for over a snapshot.
    static func pushNext(_ L: OpaquePointer) -> Int32 {
        lua_getglobal(L, "next")
        meshd_lua_insert(L, -2)
        lua_pushnil(L)
        return 3
    }

    // MARK: filter state (StreamInfo.filterState)

    /// get(name [, field]): the object as a string (numbers and booleans as text, an object as
    /// JSON), or one field of an object (a string or a number); nil when absent.
    package static func filterStateGet(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .filterState)
        let name = try LuaObjects.checkString(L, 2)
        guard let object = s.filter.stream.streamInfo.filterState[name] else { lua_pushnil(L); return 1 }
        if meshd_lua_isnoneornil(L, 3) == 0 {
            let field = try LuaObjects.checkString(L, 3)
            switch object[field] {
            case .string(let v)?: LuaObjects.push(L, v)
            case .number?, .bool?: LuaMetadataValue.push(L, object[field]!)
            default: lua_pushnil(L)
            }
            return 1
        }
        switch object {
        case .string(let v): LuaObjects.push(L, v)
        case .null: lua_pushnil(L)
        case .bool(let b): LuaObjects.push(L, b ? "true" : "false")
        case .number(let n):
            LuaObjects.push(L, n == n.rounded() && abs(n) < 9.0e15 ? String(Int64(n)) : String(n))
        case .array, .object:
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            LuaObjects.push(L, (try? encoder.encode(object)).map { String(decoding: $0, as: UTF8.self) } ?? "")
        }
        return 1
    }
}
