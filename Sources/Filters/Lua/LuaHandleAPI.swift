import CLua
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1
import FilterHost
import Transport
import LuaRuntime
import MeshAPI

/// The stream handle passed to envoy_on_request / envoy_on_response.
package enum LuaHandleAPI {
    package static var methods: [(String, LuaHostFn)] {
        var m: [(String, LuaHostFn)] = []
        m.append(("headers", { L in LuaObjects.host(L) { L in try LuaHandleAPI.headers(L) } }))
        m.append(("body", { L in LuaObjects.host(L) { L in try LuaHandleAPI.body(L) } }))
        m.append(("bodyChunks", { L in LuaObjects.host(L) { L in try LuaHandleAPI.bodyChunks(L) } }))
        m.append(("trailers", { L in LuaObjects.host(L) { L in try LuaHandleAPI.trailers(L) } }))
        m.append(("respond", { L in LuaObjects.host(L) { L in try LuaHandleAPI.respond(L) } }))
        m.append(("metadata", { L in LuaObjects.host(L) { L in try LuaHandleAPI.metadata(L) } }))
        m.append(("filterContext", { L in LuaObjects.host(L) { L in try LuaHandleAPI.filterContext(L) } }))
        m.append(("streamInfo", { L in LuaObjects.host(L) { L in try LuaHandleAPI.child(L, .streamInfo) } }))
        m.append(("connectionStreamInfo", { L in LuaObjects.host(L) { L in try LuaHandleAPI.child(L, .streamInfo) } }))
        m.append(("connection", { L in LuaObjects.host(L) { L in try LuaHandleAPI.child(L, .connection) } }))
        m.append(("route", { L in LuaObjects.host(L) { L in try LuaHandleAPI.child(L, .route) } }))
        m.append(("span", { L in LuaObjects.host(L) { L in try LuaHandleAPI.child(L, .span) } }))
        m.append(("virtualHost", { L in LuaObjects.host(L) { L in try LuaHandleAPI.child(L, .virtualHost) } }))
        m.append(("httpCall", { L in LuaObjects.host(L) { L in try LuaHTTPCallAPI.httpCall(L) } }))
        m.append(("setUpstreamOverrideHost", { L in LuaObjects.unsupported(L, "setUpstreamOverrideHost") }))
        m.append(("importPublicKey", { L in LuaObjects.host(L) { L in try LuaCryptoAPI.importPublicKey(L) } }))
        m.append(("verifySignature", { L in LuaObjects.host(L) { L in try LuaCryptoAPI.verifySignature(L) } }))
        m.append(("base64Escape", { L in LuaObjects.host(L) { L in try LuaHandleAPI.base64Escape(L) } }))
        m.append(("base64Decode", { L in LuaObjects.host(L) { L in try LuaHandleAPI.base64Decode(L) } }))
        m.append(("timestamp", { L in LuaObjects.host(L) { L in try LuaHandleAPI.timestamp(L, asString: false) } }))
        m.append(("timestampString", { L in LuaObjects.host(L) { L in try LuaHandleAPI.timestamp(L, asString: true) } }))
        m.append(("clearRouteCache", { L in LuaObjects.host(L) { L in try LuaHandleAPI.clearRouteCache(L) } }))
        return m
    }

    /// The run's header map: made on the first call, then the same object (kept in the
    /// handle's user value; a handle of another run has its own).
    package static func headers(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        lua_settop(L, 1)
        if lua_getiuservalue(L, 1, 1) == LUA_TUSERDATA { return 1 }
        meshd_lua_pop(L, 1)
        LuaObjects.push(L, s, .headers, aux: 0)
        lua_pushvalue(L, -1)
        lua_setiuservalue(L, 1, 1)
        return 1
    }

    package static func child(_ L: OpaquePointer, _ kind: LuaKind) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        LuaObjects.push(L, s, kind)
        return 1
    }

    /// Only the run's own coroutine may wait, and only where Lua can yield.
    package static func checkCanWait(_ L: OpaquePointer, _ s: LuaScope, _ what: String) throws {
        guard s.filter[run: s.response].thread == L, lua_isyieldable(L) != 0 else {
            throw LuaRaise("\(what) cannot wait here (called from a nested coroutine or a C boundary)")
        }
    }

    package static func body(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        let wrap = lua_toboolean(L, 2) != 0
        let f = s.filter, r = s.response
        if f[run: r].body != nil {
            LuaObjects.push(L, s, .buffer)
            return 1
        }
        if f[run: r].streaming || f[run: r].bodyPassed { throw LuaRaise("cannot call body() after body has been streamed") }
        if f[run: r].endSeen {
            guard wrap else { lua_pushnil(L); return 1 }
            // A message without a body: the script may fill this one, and then it goes on
            // behind the headers (which must not have gone yet).
            s.filter[run: s.response].body = ByteBuffer()
            if !f[run: r].headersPassed {
                s.filter[run: s.response].bodyHeld = true
                s.filter[run: s.response].bodyMade = true
            }
            LuaObjects.push(L, s, .buffer)
            return 1
        }
        try checkCanWait(L, s, "body()")
        s.filter[run: s.response].wrapBody = wrap
        s.filter[run: s.response].wait = .body
        return luaYield
    }

    package static func bodyChunks(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        if s.filter[run: s.response].body != nil || s.filter[run: s.response].bodyPassed {
            throw LuaRaise("cannot call bodyChunks() after body has been buffered or streamed")
        }
        s.filter[run: s.response].streaming = true
        lua_pushvalue(L, 1)
        meshd_pushhostfn(L, { L in LuaObjects.host(L) { L in try LuaHandleAPI.nextChunk(L) } }, 1)
        return 1
    }

    /// The bodyChunks() iterator: waits for the next chunk; nil at the end of the body.
    package static func nextChunk(_ L: OpaquePointer) throws -> Int32 {
        lua_pushvalue(L, meshd_lua_upvalueindex(2))
        meshd_lua_replace(L, 1)
        let s = try LuaObjects.scope(L, .handle)
        lua_settop(L, 0)
        if s.filter[run: s.response].endSeen {
            lua_pushnil(L)
            return 1
        }
        try checkCanWait(L, s, "bodyChunks()")
        s.filter[run: s.response].wait = .chunk
        return luaYield
    }

    package static func trailers(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        let f = s.filter, r = s.response
        if f[run: r].trailersSeen {
            LuaObjects.push(L, s, .headers, aux: 1)
            return 1
        }
        if f[run: r].endSeen && !f[run: r].endAmbiguous {
            lua_pushnil(L)
            return 1
        }
        try checkCanWait(L, s, "trailers()")
        s.filter[run: s.response].wait = .trailers
        return luaYield
    }

    package static func respond(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        guard !s.response else { throw LuaRaise("respond not currently supported in the response path") }
        // Envoy's rule: a reply is possible only while the request headers are still ours
        // (not inside a bodyChunks() loop, say); the run then fails and the request goes on.
        guard !s.filter.req.headersPassed else { throw LuaRaise("respond() cannot be called if headers have been continued") }
        guard lua_type(L, 2) == LUA_TTABLE else { throw LuaRaise("respond() expects a headers table") }
        var headers = HTTPHeaders()
        var status: Int?
        lua_pushnil(L)
        while lua_next(L, 2) != 0 {
            defer { meshd_lua_pop(L, 1) }
            guard lua_type(L, -2) == LUA_TSTRING, let name = LuaObjects.string(L, -2) else { continue }
            var values: [String] = []
            if lua_type(L, -1) == LUA_TTABLE {
                let n = lua_rawlen(L, -1)
                for i in 0..<n {
                    lua_rawgeti(L, -1, lua_Integer(i + 1))
                    if let v = LuaObjects.string(L, -1) { values.append(v) }
                    meshd_lua_pop(L, 1)
                }
            } else if let v = LuaObjects.string(L, -1) {
                values.append(v)
            }
            if name == ":status" {
                status = values.first.flatMap { Int($0) }
            } else if !name.hasPrefix(":") {
                try LuaHeaderMapAPI.checkName(name)
                for v in values { headers.add(name: name, value: v) }
            }
        }
        guard let code = status, (200...599).contains(code) else {
            throw LuaRaise(":status must be between 200-599")
        }
        let body = (meshd_lua_isnoneornil(L, 3) != 0) ? "" : try LuaObjects.checkString(L, 3)
        try checkCanWait(L, s, "respond()")
        s.filter.req.reply = (code, headers, body)
        s.filter.req.wait = .respond
        return luaYield
    }

    package static func metadata(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        LuaObjects.push(L, s, .metadata)
        return 1
    }

    /// The plugin's pluginConfig as a table, built once per VM.
    package static func filterContext(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        if s.vm.filterContextRef == LUA_NOREF {
            LuaJSON.push(L, s.vm.plugin.pluginConfig ?? .object([:]))
            s.vm.filterContextRef = luaL_ref(L, meshd_lua_registryindex())
        }
        lua_rawgeti(L, meshd_lua_registryindex(), lua_Integer(s.vm.filterContextRef))
        return 1
    }

    package static func base64Escape(_ L: OpaquePointer) throws -> Int32 {
        _ = try LuaObjects.scope(L, .handle)
        guard lua_type(L, 2) == LUA_TSTRING else { throw LuaRaise("base64Escape() expects a string") }
        var len = 0
        let p = lua_tolstring(L, 2, &len)!
        LuaObjects.push(L, Data(bytes: p, count: len).base64EncodedString())
        return 1
    }

    /// Envoy's base64Decode: standard alphabet, padding optional; nil (not an error) for
    /// malformed input, which usually came from a header or a body.
    package static func base64Decode(_ L: OpaquePointer) throws -> Int32 {
        _ = try LuaObjects.scope(L, .handle)
        guard lua_type(L, 2) == LUA_TSTRING, let text = LuaObjects.string(L, 2) else {
            throw LuaRaise("bad argument #1 to 'base64Decode' (string expected, got \(LuaObjects.typeName(L, 2)))")
        }
        let padded = text.utf8.count % 4 == 0 ? text : text + String(repeating: "=", count: 4 - text.utf8.count % 4)
        guard text.utf8.count % 4 != 1, let data = Data(base64Encoded: padded) else {
            lua_pushnil(L)
            return 1
        }
        data.withUnsafeBytes { LuaObjects.push(L, bytes: $0) }
        return 1
    }

    package static func timestamp(_ L: OpaquePointer, asString: Bool) throws -> Int32 {
        _ = try LuaObjects.scope(L, .handle)
        let resolution = LuaObjects.string(L, 2) ?? "MILLISECOND"
        guard resolution == "MILLISECOND" || resolution == "MICROSECOND" else {
            throw LuaRaise("timestamp format must be MILLISECOND or MICROSECOND.")
        }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let value = resolution == "MICROSECOND"
            ? Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
            : Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
        if asString { LuaObjects.push(L, String(value)) } else { lua_pushinteger(L, lua_Integer(value)) }
        return 1
    }

    package static func clearRouteCache(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        s.filter.stream.clearRouteCache()
        return 0
    }
}
