import CLua
import FilterHost
import LuaRuntime

/// `handle:span()` (a meshd extension; Envoy's Lua API has no span calls): the stream's span
/// in this proxy. Tags set here are added to the span this hop reports (they replace a
/// standard tag of the same name); without tracing, or on an unsampled trace, they are kept
/// and dropped with the stream, so a plugin need not check.
package enum LuaSpanAPI {
    /// Tags a plugin may set on one span; more would let a script grow every span without bound.
    static let maxTags = 64
    static let maxValueBytes = 1024

    package static var methods: [(String, LuaHostFn)] {
        [
            ("setTag", { L in LuaObjects.host(L) { L in try LuaSpanAPI.setTag(L) } }),
            ("getTag", { L in LuaObjects.host(L) { L in try LuaSpanAPI.getTag(L) } }),
            ("traceId", { L in LuaStreamInfoAPI.info(L, .span) { s in s.filter.stream.streamInfo.trace?.traceIDHex ?? "" } }),
            ("spanId", { L in LuaStreamInfoAPI.info(L, .span) { s in s.filter.stream.streamInfo.trace?.spanIDHex ?? "" } }),
            ("sampled", { L in LuaObjects.host(L) { L in try LuaSpanAPI.sampled(L) } }),
        ]
    }

    static func setTag(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .span)
        let key = try LuaObjects.checkString(L, 2)
        let value = try LuaObjects.checkString(L, 3)
        guard !key.isEmpty else { throw LuaRaise("span tag names must not be empty") }
        var info = s.filter.stream.streamInfo
        if info.spanTags[key] == nil && info.spanTags.count >= maxTags {
            throw LuaRaise("a span takes at most \(maxTags) tags from plugins")
        }
        info.spanTags[key] = String(decoding: value.utf8.prefix(maxValueBytes), as: UTF8.self)
        s.filter.stream.streamInfo = info
        return 0
    }

    static func getTag(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .span)
        let key = try LuaObjects.checkString(L, 2)
        if let value = s.filter.stream.streamInfo.spanTags[key] {
            LuaObjects.push(L, value)
        } else {
            lua_pushnil(L)
        }
        return 1
    }

    static func sampled(_ L: OpaquePointer) throws -> Int32 {
        let sampled = try LuaObjects.scope(L, .span).filter.stream.streamInfo.trace?.sampled ?? false
        lua_pushboolean(L, sampled ? 1 : 0)
        return 1
    }
}
