import CLua
import LuaRuntime

/// A live run of the Lua filter, found from `self` of a method call: the runtime's run
/// reference with its owner known to be the filter. Lives only for the host call, while the
/// VM runs the script and the VM's slot table holds the filter: no reference counting.
package struct LuaScope {
    package unowned(unsafe) let vm: LuaVM
    package unowned(unsafe) let filter: LuaFilter
    package let response: Bool
    package let obj: UnsafeMutablePointer<meshd_obj>
    var run: LuaRunRef { LuaRunRef(vm: vm, owner: filter, response: response, obj: obj) }
}

extension LuaObjects {
    /// `self` of a method on a per-run object, checked to belong to a live run of a filter.
    package static func scope(_ L: OpaquePointer, _ kind: LuaKind) throws -> LuaScope {
        let r = try run(L, kind)
        // Only the Lua filter opens slots, so the owner is always one.
        return LuaScope(vm: r.vm, filter: unsafeDowncast(r.owner, to: LuaFilter.self), response: r.response, obj: r.obj)
    }

    /// Pushes an object tied to the same run (and generation) as `scope`.
    @discardableResult
    package static func push(_ L: OpaquePointer, _ scope: LuaScope, _ kind: LuaKind, aux: UInt64 = 0) -> UnsafeMutablePointer<meshd_obj> {
        // Every argument given: a defaulted one is a call across modules on each push.
        push(L, scope.vm, kind, slot: scope.obj.pointee.slot, gen: scope.obj.pointee.gen, aux: aux, ptr: nil, userValues: 0)
    }
}

/// Every stream-facing host object's methods (Envoy's Lua API), handed to each VM. As in
/// Envoy, every object also has the log calls.
package enum LuaFilterLibrary {
    package static let shared: LuaHostLibrary = {
        let stream: [LuaKind: [(String, LuaHostFn)]] = [
            .handle: LuaHandleAPI.methods,
            .headers: LuaHeaderMapAPI.methods,
            .buffer: LuaBufferAPI.methods,
            .streamInfo: LuaStreamInfoAPI.methods,
            .dynamicMetadata: LuaStreamInfoAPI.dynamicMetadataMethods,
            .filterState: LuaStreamInfoAPI.filterStateMethods,
            .connection: LuaConnectionAPI.connectionMethods,
            .ssl: LuaConnectionAPI.sslMethods,
            .parsedName: LuaConnectionAPI.parsedNameMethods,
            .metadata: LuaRouteAPI.metadataMethods,
            .route: LuaRouteAPI.routeMethods,
            .virtualHost: LuaRouteAPI.virtualHostMethods,
            .span: LuaSpanAPI.methods,
        ]
        var methods: [LuaKind: [(String, LuaHostFn)]] = [:]
        for kind in LuaKind.allCases where kind != .sharedDict {
            methods[kind] = (stream[kind] ?? []) + LuaLog.methods
        }
        return LuaHostLibrary(methods: methods)
    }()
}
