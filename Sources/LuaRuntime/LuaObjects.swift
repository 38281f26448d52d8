import CLua
import MeshAPI

/// A Swift function Lua can call (through the C trampoline in CLua's shim). It must not
/// capture, raise or yield itself: it returns a result count or `luaRaise` / `luaYield`.
package typealias LuaHostFn = @convention(c) (OpaquePointer?) -> Int32

package let luaRaise: Int32 = -1
package let luaYield: Int32 = -2

/// An error a host function reports to the script (the trampoline raises it).
package struct LuaRaise: Error {
    package let message: String
    package init(_ message: String) { self.message = message }
    package static let outOfScope = LuaRaise("object used outside of proper scope")
}

/// What a meshd userdata is. The raw value indexes the VM's metatable list.
package enum LuaKind: UInt32, CaseIterable {
    case handle = 0, headers, buffer, streamInfo, dynamicMetadata, connection, ssl, metadata, publicKey, sharedDict
    case route, virtualHost, filterState, parsedName, span
}

/// A live run, found from `self` of a method call. `owner` is whatever opened the slot
/// (the Lua filter); the runtime never looks inside it. Held only for the host call: the
/// VM is running it and the slot table holds the owner, so neither is counted again.
package struct LuaRunRef {
    package unowned(unsafe) let vm: LuaVM
    package unowned(unsafe) let owner: AnyObject
    package let response: Bool
    package let obj: UnsafeMutablePointer<meshd_obj>

    package init(vm: LuaVM, owner: AnyObject, response: Bool, obj: UnsafeMutablePointer<meshd_obj>) {
        self.vm = vm
        self.owner = owner
        self.response = response
        self.obj = obj
    }
}

/// The host objects' methods, by kind: what a script can call on each userdata. The Lua
/// filter supplies the stream-facing ones; the runtime adds its own (shared dictionaries,
/// public keys). A name starting with `__` is a metamethod (`__pairs` makes `pairs(obj)` work).
package struct LuaHostLibrary: Sendable {
    package let methods: [LuaKind: [(String, LuaHostFn)]]
    package init(methods: [LuaKind: [(String, LuaHostFn)]]) {
        var all = methods
        all[.sharedDict] = LuaSharedDictAPI.methods
        all[.publicKey, default: []] += LuaCryptoAPI.keyMethods
        self.methods = all
    }
}

package enum LuaObjects {
    /// Runs a host function body, turning a thrown `LuaRaise` into a Lua error.
    @inline(__always)
    package static func host(_ L: OpaquePointer?, _ body: (OpaquePointer) throws -> Int32) -> Int32 {
        guard let L else { return 0 }
        do { return try body(L) } catch let e as LuaRaise {
            push(L, e.message)
            return luaRaise
        } catch {
            push(L, "\(error)")
            return luaRaise
        }
    }

    package static func unsupported(_ L: OpaquePointer?, _ name: String) -> Int32 {
        guard let L else { return 0 }
        push(L, "\(name) is not supported yet")
        return luaRaise
    }

    @inline(__always)
    package static func vm(_ L: OpaquePointer) -> LuaVM {
        Unmanaged<LuaVM>.fromOpaque(meshd_ctl(L).pointee.host).takeUnretainedValue()
    }

    /// The meshd object of `kind` at `index`, or a raise naming what was expected.
    package static func object(_ L: OpaquePointer, _ index: Int32, _ kind: LuaKind) throws -> UnsafeMutablePointer<meshd_obj> {
        guard lua_type(L, index) == LUA_TUSERDATA, let raw = lua_touserdata(L, index) else {
            throw LuaRaise("bad argument #\(index): \(kind) expected (did you call with '.' instead of ':'?)")
        }
        let obj = raw.assumingMemoryBound(to: meshd_obj.self)
        guard obj.pointee.kind == kind.rawValue else { throw LuaRaise("bad argument #\(index): \(kind) expected") }
        return obj
    }

    /// `self` of a method on a per-run object, checked to belong to a live run.
    package static func run(_ L: OpaquePointer, _ kind: LuaKind) throws -> LuaRunRef {
        let obj = try object(L, 1, kind)
        let vm = vm(L)
        guard let (owner, response) = vm.liveOwner(slot: obj.pointee.slot, gen: obj.pointee.gen) else {
            throw LuaRaise.outOfScope
        }
        return LuaRunRef(vm: vm, owner: owner.takeUnretainedValue(), response: response, obj: obj)
    }

    /// `self` of a call every object offers (the log calls): any meshd object, and if it
    /// belongs to a run, a live one. Returns its VM.
    package static func live(_ L: OpaquePointer) throws -> LuaVM {
        guard lua_type(L, 1) == LUA_TUSERDATA, let raw = lua_touserdata(L, 1) else {
            throw LuaRaise("bad argument #1: object expected (did you call with '.' instead of ':'?)")
        }
        let obj = raw.assumingMemoryBound(to: meshd_obj.self)
        let vm = vm(L)
        // Generation 0: an object of no run (a public key, a shared dictionary).
        if obj.pointee.gen != 0, vm.lookup(slot: obj.pointee.slot, gen: obj.pointee.gen) == nil {
            throw LuaRaise.outOfScope
        }
        return vm
    }

    /// Pushes a new object of `kind` with the shared metatable of its kind, and `userValues`
    /// Lua values of its own (nil until set; a handle keeps its header map there).
    @discardableResult
    package static func push(_ L: OpaquePointer, _ vm: LuaVM, _ kind: LuaKind, slot: UInt32 = 0, gen: UInt64 = 0,
                     aux: UInt64 = 0, ptr: UnsafeMutableRawPointer? = nil,
                     userValues: Int32 = 0) -> UnsafeMutablePointer<meshd_obj> {
        let raw = lua_newuserdatauv(L, MemoryLayout<meshd_obj>.size, userValues)!
        let obj = raw.bindMemory(to: meshd_obj.self, capacity: 1)
        obj.initialize(to: meshd_obj(kind: kind.rawValue, slot: slot, gen: gen, aux: aux, ptr: ptr))
        lua_rawgeti(L, meshd_lua_registryindex(), lua_Integer(vm.metatables[Int(kind.rawValue)]))
        lua_setmetatable(L, -2)
        return obj
    }

    /// Pushes an object tied to the same run (and generation) as `scope`.
    @discardableResult
    package static func push(_ L: OpaquePointer, _ scope: LuaRunRef, _ kind: LuaKind, aux: UInt64 = 0) -> UnsafeMutablePointer<meshd_obj> {
        push(L, scope.vm, kind, slot: scope.obj.pointee.slot, gen: scope.obj.pointee.gen, aux: aux, ptr: nil, userValues: 0)
    }

    // MARK: values

    package static func push(_ L: OpaquePointer, _ s: String) {
        var s = s
        s.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
        }
    }

    package static func push(_ L: OpaquePointer, bytes: UnsafeRawBufferPointer) {
        _ = lua_pushlstring(L, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
    }

    /// A string or number argument as a Swift string (no metamethods, no conversion in place).
    package static func string(_ L: OpaquePointer, _ index: Int32) -> String? {
        let t = lua_type(L, index)
        guard t == LUA_TSTRING || t == LUA_TNUMBER else { return nil }
        if t == LUA_TNUMBER {
            if lua_isinteger(L, index) != 0 { return String(lua_tointegerx(L, index, nil)) }
            let n = lua_tonumberx(L, index, nil)
            return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        }
        var len = 0
        guard let p = lua_tolstring(L, index, &len) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }

    /// A string (or number) argument; raises naming the argument otherwise.
    package static func checkString(_ L: OpaquePointer, _ index: Int32) throws -> String {
        // Not a defaulted `what`: a default argument is a call of its own on every use.
        guard let s = string(L, index) else { return try checkString(L, index, "string") }
        return s
    }

    package static func checkString(_ L: OpaquePointer, _ index: Int32, _ what: String) throws -> String {
        guard let s = string(L, index) else {
            throw LuaRaise("bad argument #\(index - 1) (\(what) expected, got \(typeName(L, index)))")
        }
        return s
    }

    package static func checkInteger(_ L: OpaquePointer, _ index: Int32) throws -> Int {
        var ok: Int32 = 0
        let v = lua_tointegerx(L, index, &ok)
        guard ok != 0 else { throw LuaRaise("bad argument #\(index - 1) (integer expected, got \(typeName(L, index)))") }
        return Int(v)
    }

    package static func typeName(_ L: OpaquePointer, _ index: Int32) -> String {
        String(cString: lua_typename(L, lua_type(L, index)))
    }

    // MARK: metatables

    /// Builds one metatable per kind, once per VM: `__index` is the method table, and
    /// metamethods (`__pairs`) sit on the metatable itself.
    package static func registerMetatables(_ vm: LuaVM, library: LuaHostLibrary) {
        let L = vm.L
        for kind in LuaKind.allCases {
            meshd_lua_newtable(L)
            meshd_lua_newtable(L)
            let methods = library.methods[kind] ?? []
            for (name, fn) in methods where !name.hasPrefix("__") {
                meshd_pushhostfn(L, fn, 0)
                lua_setfield(L, -2, name)
            }
            lua_setfield(L, -2, "__index")
            for (name, fn) in methods where name.hasPrefix("__") {
                meshd_pushhostfn(L, fn, 0)
                lua_setfield(L, -2, name)
            }
            push(L, "meshd." + String(describing: kind))
            lua_setfield(L, -2, "__name")
            lua_pushboolean(L, 0)
            lua_setfield(L, -2, "__metatable")
            if let gc = finalizer(kind) {
                meshd_pushhostfn(L, gc, 0)
                lua_setfield(L, -2, "__gc")
            }
            vm.metatables.append(luaL_ref(L, meshd_lua_registryindex()))
        }
    }

    package static func finalizer(_ kind: LuaKind) -> LuaHostFn? {
        kind == .publicKey ? { L in LuaCryptoAPI.freeKey(L) } : nil
    }
}
