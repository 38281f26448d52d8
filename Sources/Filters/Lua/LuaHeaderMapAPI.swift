import CLua
import NIOHTTP1
import FilterHost
import Transport
import LuaRuntime
import MeshAPI

/// Envoy's header map object over a stream's headers (aux 0) or trailers (aux 1).
/// Pseudo-headers (:method, :path, :authority, :scheme; :status) map onto the head's fields.
package enum LuaHeaderMapAPI {
    package static var methods: [(String, LuaHostFn)] {
        [
            ("get", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.get(L) } }),
            ("getAtIndex", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.getAtIndex(L) } }),
            ("getNumValues", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.getNumValues(L) } }),
            ("add", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.mutate(L, .add) } }),
            ("replace", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.mutate(L, .replace) } }),
            ("remove", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.mutate(L, .remove) } }),
            ("pairs", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.pairs(L) } }),
            ("__pairs", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.pairs(L) } }),
            ("setHttp1ReasonPhrase", { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.setReason(L) } }),
        ]
    }

    package enum Edit { case add, replace, remove }

    private static func isTrailers(_ s: LuaScope) -> Bool { s.obj.pointee.aux == 1 }

    /// Values of `name`, pseudo-headers included; lookups are case-insensitive.
    package static func values(_ s: LuaScope, _ name: String) -> [String] {
        let f = s.filter
        if isTrailers(s) { return (s.response ? f.respTrailers : f.reqTrailers)?[name] ?? [] }
        if name.hasPrefix(":") { return pseudo(s, name).map { [$0] } ?? [] }
        return s.response ? f.respHead.headers[name] : f.reqHead.headers[name]
    }

    package static func pseudo(_ s: LuaScope, _ name: String) -> String? {
        let f = s.filter
        if s.response { return name == ":status" ? String(f.respHead.status) : nil }
        // Field by field: a copy of the whole head would retain every string in it.
        switch name {
        case ":method": return f.reqHead.method
        case ":path": return f.reqHead.path
        case ":authority": return f.reqHead.authority
        case ":scheme": return f.reqHead.scheme
        default: return nil
        }
    }

    /// `get`: the one value as it is, several joined with ",". The common case (a plain
    /// header with one value) makes no array of values.
    package static func get(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .headers)
        let name = try LuaObjects.checkString(L, 2)
        if !isTrailers(s), name.utf8.first != UInt8(ascii: ":") {
            let f = s.filter
            let found = s.response ? single(f.respHead.headers, name) : single(f.reqHead.headers, name)
            switch found {
            case .none: lua_pushnil(L); return 1
            case .one(let value): LuaObjects.push(L, value); return 1
            case .several: break
            }
        }
        let v = values(s, name)
        if v.isEmpty { lua_pushnil(L) } else { LuaObjects.push(L, v.count == 1 ? v[0] : v.joined(separator: ",")) }
        return 1
    }

    private enum Lookup { case none, one(String), several }

    /// Whether `headers` has no value, one, or several for `name` (case-insensitive).
    private static func single(_ headers: HTTPHeaders, _ name: String) -> Lookup {
        var found = Lookup.none
        for (n, v) in headers where sameName(n, name) {
            if case .one = found { return .several }
            found = .one(v)
        }
        return found
    }

    /// Header names compared as HTTP does (ASCII case-insensitive), without lower-casing copies.
    private static func sameName(_ a: String, _ b: String) -> Bool {
        var i = a.utf8.makeIterator(), j = b.utf8.makeIterator()
        while true {
            switch (i.next(), j.next()) {
            case (nil, nil): return true
            case let (x?, y?) where x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A): continue
            default: return false
            }
        }
    }

    package static func getAtIndex(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .headers)
        let v = values(s, try LuaObjects.checkString(L, 2))
        let i = try LuaObjects.checkInteger(L, 3)
        if i >= 0 && i < v.count { LuaObjects.push(L, v[i]) } else { lua_pushnil(L) }
        return 1
    }

    package static func getNumValues(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .headers)
        lua_pushinteger(L, lua_Integer(values(s, try LuaObjects.checkString(L, 2)).count))
        return 1
    }

    /// Envoy's rules: no edits while iterating, none once the map went on.
    package static func checkModifiable(_ s: LuaScope) throws {
        // Fields read in place: a copy of the run would retain everything in it.
        let trailers = isTrailers(s)
        if s.filter[run: s.response].iterating & (trailers ? 2 : 1) != 0 {
            throw LuaRaise("header map cannot be modified while iterating")
        }
        if trailers ? s.filter[run: s.response].trailersPassed : s.filter[run: s.response].headersPassed {
            throw LuaRaise("header map can no longer be modified")
        }
    }

    /// A name a script hands to a header map, respond() or httpCall(). HTTPHeaders traps on a
    /// name that is not ASCII, so such a name is the script's error, raised here.
    package static func checkName(_ name: String) throws {
        if name.utf8.contains(where: { $0 >= 0x80 }) { throw LuaRaise("invalid header name (not ASCII): \(name)") }
    }

    package static func mutate(_ L: OpaquePointer, _ edit: Edit) throws -> Int32 {
        let s = try LuaObjects.scope(L, .headers)
        var name = try LuaObjects.checkString(L, 2)
        let value = edit == .remove ? "" : try LuaObjects.checkString(L, 3)
        try checkModifiable(s)
        // One pass over the name: not ASCII (refused unless removing), upper case (lowered).
        var upper = false
        for c in name.utf8 {
            if c >= 0x80, edit != .remove { try checkName(name) }
            if c >= 65 && c <= 90 { upper = true }
        }
        if upper { name = name.lowercased() }
        let f = s.filter
        if isTrailers(s) {
            if s.response { apply(edit, name, value, &f.respTrailers) } else { apply(edit, name, value, &f.reqTrailers) }
        } else if name.utf8.first == UInt8(ascii: ":") {
            guard edit != .remove else { return 0 }
            try setPseudo(s, name, value)
        } else if s.response {
            apply(edit, name, value, &f.respHead.headers)
        } else {
            apply(edit, name, value, &f.reqHead.headers)
        }
        return 0
    }

    private static func apply(_ edit: Edit, _ name: String, _ value: String, _ headers: inout HTTPHeaders?) {
        guard headers != nil else { return }
        apply(edit, name, value, &headers!)
    }

    private static func apply(_ edit: Edit, _ name: String, _ value: String, _ headers: inout HTTPHeaders) {
        switch edit {
        case .add: headers.add(name: name, value: value)
        case .replace: headers.replaceOrAdd(name: name, value: value)
        case .remove: headers.remove(name: name)
        }
    }

    private static func setPseudo(_ s: LuaScope, _ name: String, _ value: String) throws {
        let f = s.filter
        if s.response {
            guard name == ":status", let code = Int(value), (100...999).contains(code) else {
                throw LuaRaise("invalid response pseudo-header \(name): \(value)")
            }
            f.respHead.status = code
            return
        }
        switch name {
        case ":method": f.reqHead.method = value
        case ":path": f.reqHead.path = value
        case ":authority": f.reqHead.authority = value
        case ":scheme": f.reqHead.scheme = value
        default: throw LuaRaise("invalid request pseudo-header \(name)")
        }
    }

    /// `pairs(headers)` (Envoy's `__pairs`) and `headers:pairs()`: iterates over a snapshot
    /// (pseudo-headers first, names lower-case as on the HTTP/2 wire) held as upvalues:
    /// {k1, v1, k2, v2, ...} and a position. The map is locked for edits until the loop ends.
    package static func pairs(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .headers)
        if s.filter[run: s.response].iterating & (isTrailers(s) ? 2 : 1) != 0 {
            throw LuaRaise("cannot create a second iterator before completing the first")
        }
        var items: [(String, String)] = []
        if !isTrailers(s) {
            let names = s.response ? [":status"] : [":authority", ":path", ":method", ":scheme"]
            for n in names { if let v = pseudo(s, n), !v.isEmpty { items.append((n, v)) } }
        }
        let f = s.filter
        let map = isTrailers(s) ? (s.response ? f.respTrailers : f.reqTrailers) ?? [:]
                                : (s.response ? f.respHead.headers : f.reqHead.headers)
        for (n, v) in map {
            items.append((n.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) ? n.lowercased() : n, v))
        }
        s.filter[run: s.response].iterating |= isTrailers(s) ? 2 : 1
        lua_settop(L, 1)
        lua_createtable(L, Int32(items.count * 2), 0)
        for (i, (n, v)) in items.enumerated() {
            LuaObjects.push(L, n)
            lua_rawseti(L, -2, lua_Integer(2 * i + 1))
            LuaObjects.push(L, v)
            lua_rawseti(L, -2, lua_Integer(2 * i + 2))
        }
        lua_pushinteger(L, 0)
        meshd_pushhostfn(L, { L in LuaObjects.host(L) { L in try LuaHeaderMapAPI.nextPair(L) } }, 3)
        return 1
    }

    package static func nextPair(_ L: OpaquePointer) throws -> Int32 {
        lua_settop(L, 0)
        lua_pushvalue(L, meshd_lua_upvalueindex(2))
        let s = try LuaObjects.scope(L, .headers)
        let i = lua_Integer(lua_tointegerx(L, meshd_lua_upvalueindex(4), nil))
        let items = meshd_lua_upvalueindex(3)
        guard lua_rawgeti(L, items, 2 * i + 1) != LUA_TNIL else {
            s.filter[run: s.response].iterating &= isTrailers(s) ? ~2 : ~1
            return 0
        }
        lua_rawgeti(L, items, 2 * i + 2)
        lua_pushinteger(L, i + 1)
        meshd_lua_replace(L, meshd_lua_upvalueindex(4))
        return 2
    }

    package static func setReason(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .headers)
        let reason = try LuaObjects.checkString(L, 2)
        guard s.response, !isTrailers(s) else { throw LuaRaise("setHttp1ReasonPhrase is only for response headers") }
        // reason-phrase = *( HTAB / SP / VCHAR / obs-text ): no CR or LF to split the response with.
        guard reason.utf8.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else {
            throw LuaRaise("invalid reason phrase: control characters are not allowed")
        }
        try checkModifiable(s)
        s.filter.respHead.reason = reason
        return 0
    }
}
