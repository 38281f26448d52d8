import CLua
import Foundation
import MeshAPI
import NIOCore
import FilterHost
import Transport
import LuaRuntime

/// streamInfo(), its dynamicMetadata(), connection() and its ssl(), and metadata().
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
            ("downstreamDirectRemoteAddress", { L in
                LuaStreamInfoAPI.info(L) { s in LuaStreamInfoAPI.format(s.filter.stream.connectionInfo.remoteAddress) }
            }),
            ("downstreamRemoteAddress", { L in LuaStreamInfoAPI.info(L) { s in LuaStreamInfoAPI.remoteAddress(s) } }),
            ("dynamicMetadata", { L in
                LuaObjects.host(L) { L in LuaObjects.push(L, try LuaObjects.scope(L, .streamInfo), .dynamicMetadata); return 1 }
            }),
            ("downstreamSslConnection", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.ssl(L, from: .streamInfo) } }),
            ("filterState", { L in LuaObjects.unsupported(L, "filterState") }),
        ]
    }

    package static var dynamicMetadataMethods: [(String, LuaHostFn)] {
        [
            ("get", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicGet(L) } }),
            ("set", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicSet(L) } }),
            ("pairs", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.dynamicPairs(L) } }),
        ]
    }

    package static var connectionMethods: [(String, LuaHostFn)] {
        [("ssl", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.ssl(L, from: .connection) } })]
    }

    /// What the engine knows about TLS; certificate details are not exposed to filters yet.
    package static var sslMethods: [(String, LuaHostFn)] {
        [
            ("peerCertificatePresented", { L in LuaObjects.host(L) { L in lua_pushboolean(L, 0); return 1 } }),
            ("peerCertificateValidated", { L in LuaObjects.host(L) { L in lua_pushboolean(L, 0); return 1 } }),
            ("uriSanPeerCertificate", { L in LuaObjects.host(L) { L in meshd_lua_newtable(L); return 1 } }),
            ("uriSanLocalCertificate", { L in LuaObjects.host(L) { L in meshd_lua_newtable(L); return 1 } }),
            ("dnsSansPeerCertificate", { L in LuaObjects.host(L) { L in meshd_lua_newtable(L); return 1 } }),
            ("sha256PeerCertificateDigest", { L in LuaStreamInfoAPI.info(L, .ssl) { _ in "" } }),
            ("subjectPeerCertificate", { L in LuaStreamInfoAPI.info(L, .ssl) { _ in "" } }),
            ("issuerPeerCertificate", { L in LuaStreamInfoAPI.info(L, .ssl) { _ in "" } }),
            ("serialNumberPeerCertificate", { L in LuaStreamInfoAPI.info(L, .ssl) { _ in "" } }),
            ("tlsVersion", { L in LuaStreamInfoAPI.info(L, .ssl) { _ in "" } }),
            ("ciphersuiteString", { L in LuaStreamInfoAPI.info(L, .ssl) { _ in "" } }),
            ("alpn", { L in LuaStreamInfoAPI.info(L, .ssl) { s in s.filter.stream.connectionInfo.alpn ?? "" } }),
        ]
    }

    package static var routeMetadataMethods: [(String, LuaHostFn)] {
        [
            ("get", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.routeMetadataGet(L) } }),
            ("pairs", { L in LuaObjects.host(L) { L in try LuaStreamInfoAPI.routeMetadataPairs(L) } }),
        ]
    }

    /// A string-valued method on an object of `kind`.
    private static func info(_ L: OpaquePointer?, _ kind: LuaKind = .streamInfo, _ value: (LuaScope) -> String) -> Int32 {
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
            let ip = first.trimmingCharacters(in: .whitespaces)
            if !ip.isEmpty { return ip.contains(":") ? "[\(ip)]:0" : "\(ip):0" }
        }
        return format(f.stream.connectionInfo.remoteAddress)
    }

    private static func ssl(_ L: OpaquePointer, from kind: LuaKind) throws -> Int32 {
        let s = try LuaObjects.scope(L, kind)
        if s.filter.stream.connectionInfo.isTLS { LuaObjects.push(L, s, .ssl) } else { lua_pushnil(L) }
        return 1
    }

    // MARK: dynamic metadata (StreamInfo.dynamicMetadata: namespace → key → string)

    package static func dynamicGet(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .dynamicMetadata)
        let ns = try LuaObjects.checkString(L, 2)
        guard let values = s.filter.stream.streamInfo.dynamicMetadata[ns] else { lua_pushnil(L); return 1 }
        pushTable(L, values)
        return 1
    }

    package static func dynamicSet(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .dynamicMetadata)
        let ns = try LuaObjects.checkString(L, 2)
        let key = try LuaObjects.checkString(L, 3)
        let value: String
        if lua_type(L, 4) == LUA_TBOOLEAN { value = lua_toboolean(L, 4) != 0 ? "true" : "false" } else {
            value = try LuaObjects.checkString(L, 4)
        }
        try s.filter.setDynamicMetadata(ns, key, value)
        return 0
    }

    package static func dynamicPairs(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .dynamicMetadata)
        meshd_lua_newtable(L)
        for (ns, values) in s.filter.stream.streamInfo.dynamicMetadata {
            pushTable(L, values)
            lua_setfield(L, -2, ns)
        }
        return pushNext(L)
    }

    private static func pushTable(_ L: OpaquePointer, _ values: [String: String]) {
        lua_createtable(L, 0, Int32(values.count))
        for (k, v) in values {
            LuaObjects.push(L, v)
            lua_setfield(L, -2, k)
        }
    }

    /// Returns `next, table, nil` for the table on top: a generic for over a snapshot.
    private static func pushNext(_ L: OpaquePointer) -> Int32 {
        lua_getglobal(L, "next")
        meshd_lua_insert(L, -2)
        lua_pushnil(L)
        return 3
    }

    // MARK: route metadata: perFilterConfig[plugin name or "meshd.lua"]["metadata"] of the route

    private static func routeMetadata(_ s: LuaScope) -> [String: JSONValue] {
        guard let config = s.filter.currentRoute?.route.perFilterConfig else { return [:] }
        return config[s.vm.plugin.name]?["metadata"]?.objectValue
            ?? config[LuaFilterFactory.name]?["metadata"]?.objectValue ?? [:]
    }

    package static func routeMetadataGet(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .metadata)
        let key = try LuaObjects.checkString(L, 2)
        if let v = routeMetadata(s)[key] { LuaJSON.push(L, v) } else { lua_pushnil(L) }
        return 1
    }

    package static func routeMetadataPairs(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .metadata)
        LuaJSON.push(L, .object(routeMetadata(s)))
        return pushNext(L)
    }
}
