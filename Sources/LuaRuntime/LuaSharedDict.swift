import CLua
import NIOConcurrencyHelpers
import NIOCore
import MeshAPI

/// A process-wide dictionary shared by every event loop's VM (meshd.shared(name)).
/// Values are strings, numbers or booleans; entries may expire.
package final class LuaSharedDict: Sendable {
    package enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case number(Double)
        case bool(Bool)
    }

    private struct Entry: Sendable {
        package var value: Value
        package var expiry: UInt64?
    }

    private static let all = NIOLockedValueBox<[String: LuaSharedDict]>([:])

    package static func named(_ name: String) -> LuaSharedDict {
        all.withLockedValue { dicts in
            if let d = dicts[name] { return d }
            let d = LuaSharedDict()
            dicts[name] = d
            return d
        }
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    private static var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    package func get(_ key: String) -> Value? {
        entries.withLockedValue { e in
            guard let entry = e[key] else { return nil }
            if let expiry = entry.expiry, expiry <= Self.now {
                e[key] = nil
                return nil
            }
            return entry.value
        }
    }

    /// A nil value deletes; a ttl of 0 or less means no expiry.
    package func set(_ key: String, _ value: Value?, ttlSeconds: Double = 0) {
        let expiry = ttlSeconds > 0 ? Self.now + UInt64(ttlSeconds * 1e9) : nil
        entries.withLockedValue { e in e[key] = value.map { Entry(value: $0, expiry: expiry) } }
    }

    /// Adds `by` atomically; a missing (or expired) key starts from `initial` (default 0)
    /// and then expires after `initTTLSeconds` (if > 0). An existing key keeps its expiry.
    /// Nil when the current value is not an integer.
    package func incr(_ key: String, by: Int64, initial: Int64?, initTTLSeconds: Double = 0) -> Int64? {
        entries.withLockedValue { e in
            var base = initial ?? 0
            var expiry: UInt64? = initTTLSeconds > 0 ? Self.now + UInt64(initTTLSeconds * 1e9) : nil
            if let entry = e[key], entry.expiry.map({ $0 > Self.now }) ?? true {
                guard case .integer(let v) = entry.value else { return nil }
                base = v
                expiry = entry.expiry
            }
            let next = base &+ by
            e[key] = Entry(value: .integer(next), expiry: expiry)
            return next
        }
    }

    package func delete(_ key: String) { set(key, nil) }
}

/// The Lua side: `local d = meshd.shared("name"); d:set(k, v, ttl); d:get(k); d:incr(k, by, init, initTTL); d:delete(k)`.
package enum LuaSharedDictAPI {
    package static var methods: [(String, LuaHostFn)] {
        [
            ("get", { L in LuaObjects.host(L) { L in try LuaSharedDictAPI.get(L) } }),
            ("set", { L in LuaObjects.host(L) { L in try LuaSharedDictAPI.set(L) } }),
            ("incr", { L in LuaObjects.host(L) { L in try LuaSharedDictAPI.incr(L) } }),
            ("delete", { L in LuaObjects.host(L) { L in try LuaSharedDictAPI.delete(L) } }),
        ]
    }

    /// meshd.shared(name): the VM keeps its own list of dicts so methods find one by index.
    static func open(_ L: OpaquePointer?) -> Int32 {
        LuaObjects.host(L) { L in
            let name = try LuaObjects.checkString(L, 1, "dictionary name")
            let vm = LuaObjects.vm(L)
            let dict = LuaSharedDict.named(name)
            let index = vm.sharedDicts.firstIndex { $0 === dict } ?? {
                vm.sharedDicts.append(dict)
                return vm.sharedDicts.count - 1
            }()
            LuaObjects.push(L, vm, .sharedDict, aux: UInt64(index))
            return 1
        }
    }

    private static func dict(_ L: OpaquePointer) throws -> LuaSharedDict {
        let obj = try LuaObjects.object(L, 1, .sharedDict)
        return LuaObjects.vm(L).sharedDicts[Int(obj.pointee.aux)]
    }

    package static func get(_ L: OpaquePointer) throws -> Int32 {
        let d = try dict(L)
        switch d.get(try LuaObjects.checkString(L, 2)) {
        case .string(let s): LuaObjects.push(L, s)
        case .integer(let i): lua_pushinteger(L, lua_Integer(i))
        case .number(let n): lua_pushnumber(L, n)
        case .bool(let b): lua_pushboolean(L, b ? 1 : 0)
        case nil: lua_pushnil(L)
        }
        return 1
    }

    package static func set(_ L: OpaquePointer) throws -> Int32 {
        let d = try dict(L)
        let key = try LuaObjects.checkString(L, 2)
        let value: LuaSharedDict.Value?
        switch lua_type(L, 3) {
        case LUA_TNIL, LUA_TNONE: value = nil
        case LUA_TBOOLEAN: value = .bool(lua_toboolean(L, 3) != 0)
        case LUA_TNUMBER:
            value = lua_isinteger(L, 3) != 0 ? .integer(Int64(lua_tointegerx(L, 3, nil))) : .number(lua_tonumberx(L, 3, nil))
        case LUA_TSTRING: value = .string(LuaObjects.string(L, 3) ?? "")
        default: throw LuaRaise("shared dict values must be strings, numbers or booleans")
        }
        let ttl = (meshd_lua_isnoneornil(L, 4) != 0) ? 0 : lua_tonumberx(L, 4, nil)
        d.set(key, value, ttlSeconds: ttl)
        lua_pushboolean(L, 1)
        return 1
    }

    package static func incr(_ L: OpaquePointer) throws -> Int32 {
        let d = try dict(L)
        let key = try LuaObjects.checkString(L, 2)
        let by = (meshd_lua_isnoneornil(L, 3) != 0) ? 1 : try LuaObjects.checkInteger(L, 3)
        let initial = (meshd_lua_isnoneornil(L, 4) != 0) ? nil : Int64(try LuaObjects.checkInteger(L, 4))
        let ttl = (meshd_lua_isnoneornil(L, 5) != 0) ? 0 : lua_tonumberx(L, 5, nil)
        guard let next = d.incr(key, by: Int64(by), initial: initial, initTTLSeconds: ttl) else {
            throw LuaRaise("shared dict value of '\(key)' is not an integer")
        }
        lua_pushinteger(L, lua_Integer(next))
        return 1
    }

    package static func delete(_ L: OpaquePointer) throws -> Int32 {
        try dict(L).delete(try LuaObjects.checkString(L, 2))
        return 0
    }
}
