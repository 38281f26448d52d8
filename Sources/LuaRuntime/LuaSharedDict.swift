import CLua
import NIOConcurrencyHelpers
import NIOCore
import MeshAPI

/// A process-wide dictionary shared by every event loop's VM (meshd.shared(name)).
/// Values are strings, numbers or booleans; entries may expire. Like OpenResty's
/// `lua_shared_dict`, a dictionary has a capacity in bytes (key + value + a fixed overhead
/// per entry): a new entry that does not fit evicts the least recently used ones, and one
/// larger than the whole capacity is refused.
package final class LuaSharedDict: Sendable {
    package enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case number(Double)
        case bool(Bool)

        var size: Int {
            if case .string(let s) = self { return s.utf8.count }
            return 8
        }
    }

    /// What an undeclared dictionary holds (`limits.sharedDicts` declares others).
    package static let defaultCapacity = 1 << 20
    /// Dictionaries per process: names are never freed, so their number is bounded too.
    package static let maxDictionaries = 64
    /// Bytes counted per entry besides its key and value (the index and list links).
    package static let entryOverhead = 64

    private static let all = NIOLockedValueBox<[String: LuaSharedDict]>([:])

    /// The dictionary `name`, made on first use. Its capacity is the largest declared so far
    /// (by any plugin): it grows, it never shrinks under a plugin still using it.
    package static func named(_ name: String, capacity: Int) throws -> LuaSharedDict {
        try all.withLockedValue { dicts in
            if let d = dicts[name] {
                d.store.withLockedValue { $0.capacity = max($0.capacity, capacity) }
                return d
            }
            guard dicts.count < maxDictionaries else {
                throw LuaRaise("too many shared dictionaries (\(maxDictionaries) per process)")
            }
            let d = LuaSharedDict(name: name, capacity: capacity)
            dicts[name] = d
            return d
        }
    }

    /// The dictionary `name` for host code (tests, tools), made with the default capacity
    /// if new: only scripts are held to the number of dictionaries.
    package static func named(_ name: String) -> LuaSharedDict {
        all.withLockedValue { dicts in
            if let d = dicts[name] { return d }
            let d = LuaSharedDict(name: name, capacity: defaultCapacity)
            dicts[name] = d
            return d
        }
    }

    package let name: String
    private let store: NIOLockedValueBox<LuaLRUStore>

    private init(name: String, capacity: Int) {
        self.name = name
        store = NIOLockedValueBox(LuaLRUStore(capacity: capacity))
    }

    private static var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    package var capacity: Int { store.withLockedValue { $0.capacity } }
    /// Bytes held now, as counted against the capacity.
    package var bytesUsed: Int { store.withLockedValue { $0.used } }
    package var count: Int { store.withLockedValue { $0.count } }

    package func get(_ key: String) -> Value? {
        store.withLockedValue { $0.get(key, now: Self.now) }
    }

    /// A nil value deletes; a ttl of 0 or less means no expiry.
    package func set(_ key: String, _ value: Value?, ttlSeconds: Double = 0) throws {
        let expiry = ttlSeconds > 0 ? Self.now + UInt64(ttlSeconds * 1e9) : nil
        try store.withLockedValue { s in
            guard let value else { return s.remove(key) }
            try s.put(key, value, expiry: expiry, dict: name)
        }
    }

    /// Adds `by` atomically; a missing (or expired) key starts from `initial` (default 0)
    /// and then expires after `initTTLSeconds` (if > 0). An existing key keeps its expiry.
    /// Nil when the current value is not an integer.
    package func incr(_ key: String, by: Int64, initial: Int64?, initTTLSeconds: Double = 0) throws -> Int64? {
        try store.withLockedValue { s in
            let now = Self.now
            var base = initial ?? 0
            var expiry: UInt64? = initTTLSeconds > 0 ? now + UInt64(initTTLSeconds * 1e9) : nil
            if let (value, existing) = s.entry(key, now: now) {
                guard case .integer(let v) = value else { return nil }
                base = v
                expiry = existing
            }
            let next = base &+ by
            try s.put(key, .integer(next), expiry: expiry, dict: name)
            return next
        }
    }

    package func delete(_ key: String) { store.withLockedValue { $0.remove(key) } }
}

/// Entries in least-recently-used order (a doubly linked list over an array), with their
/// byte count against a capacity. Used under its dictionary's lock.
struct LuaLRUStore {
    private struct Node {
        var key: String
        var value: LuaSharedDict.Value
        var expiry: UInt64?
        var prev = -1
        var next = -1
        var size: Int { key.utf8.count + value.size + LuaSharedDict.entryOverhead }
    }

    var capacity: Int
    private(set) var used = 0
    private var index: [String: Int] = [:]
    private var nodes: [Node] = []
    private var free: [Int] = []
    /// Most and least recently used.
    private var head = -1, tail = -1

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { index.count }

    /// The live value and expiry of `key`, marked as just used; an expired one is dropped.
    mutating func entry(_ key: String, now: UInt64) -> (LuaSharedDict.Value, UInt64?)? {
        guard let i = index[key] else { return nil }
        if let expiry = nodes[i].expiry, expiry <= now {
            remove(key)
            return nil
        }
        unlink(i)
        linkFront(i)
        return (nodes[i].value, nodes[i].expiry)
    }

    mutating func get(_ key: String, now: UInt64) -> LuaSharedDict.Value? { entry(key, now: now)?.0 }

    mutating func put(_ key: String, _ value: LuaSharedDict.Value, expiry: UInt64?, dict: String) throws {
        let node = Node(key: key, value: value, expiry: expiry)
        guard node.size <= capacity else {
            throw LuaRaise("shared dict '\(dict)': an entry of \(node.size) bytes does not fit its capacity of \(capacity) bytes")
        }
        remove(key)
        while used + node.size > capacity, tail >= 0 { remove(nodes[tail].key) }
        let i: Int
        if let reused = free.popLast() {
            nodes[reused] = node
            i = reused
        } else {
            nodes.append(node)
            i = nodes.count - 1
        }
        index[key] = i
        used += node.size
        linkFront(i)
    }

    mutating func remove(_ key: String) {
        guard let i = index.removeValue(forKey: key) else { return }
        unlink(i)
        used -= nodes[i].size
        nodes[i].key = ""
        nodes[i].value = .bool(false)
        free.append(i)
    }

    private mutating func unlink(_ i: Int) {
        let (p, n) = (nodes[i].prev, nodes[i].next)
        if p >= 0 { nodes[p].next = n } else { head = n }
        if n >= 0 { nodes[n].prev = p } else { tail = p }
        nodes[i].prev = -1
        nodes[i].next = -1
    }

    private mutating func linkFront(_ i: Int) {
        nodes[i].next = head
        if head >= 0 { nodes[head].prev = i }
        head = i
        if tail < 0 { tail = i }
    }
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
            let dict = try LuaSharedDict.named(name, capacity: vm.limits.sharedDicts[name] ?? LuaSharedDict.defaultCapacity)
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
        try d.set(key, value, ttlSeconds: ttl)
        lua_pushboolean(L, 1)
        return 1
    }

    package static func incr(_ L: OpaquePointer) throws -> Int32 {
        let d = try dict(L)
        let key = try LuaObjects.checkString(L, 2)
        let by = (meshd_lua_isnoneornil(L, 3) != 0) ? 1 : try LuaObjects.checkInteger(L, 3)
        let initial = (meshd_lua_isnoneornil(L, 4) != 0) ? nil : Int64(try LuaObjects.checkInteger(L, 4))
        let ttl = (meshd_lua_isnoneornil(L, 5) != 0) ? 0 : lua_tonumberx(L, 5, nil)
        guard let next = try d.incr(key, by: Int64(by), initial: initial, initTTLSeconds: ttl) else {
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
