import LuaRuntime

/// What the Lua filter keeps per VM (`LuaVM.hostState`): its runs not yet in the loop's
/// stats, and filters whose streams ended cleanly, for the next streams of the loop (a
/// filter and its run state are two allocations and a teardown a stream no longer makes).
final class LuaVMHost {
    let tally: LuaRunTally
    private var spares: [LuaFilter] = []
    /// More than the streams a loop usually ends between two it starts.
    static let maxSpares = 64

    private init(plugin: LuaPluginConfig) { tally = LuaRunTally(plugin: plugin) }

    /// The VM's, made on first use.
    static func of(_ vm: LuaVM) -> LuaVMHost {
        if let host = vm.hostState { return unsafeDowncast(host, to: LuaVMHost.self) }
        let host = LuaVMHost(plugin: vm.plugin)
        vm.hostState = host
        return host
    }

    /// A filter `LuaFilter.onStreamComplete` made new, holding nothing.
    func keep(_ filter: LuaFilter) {
        if spares.count < Self.maxSpares { spares.append(filter) }
    }

    func takeSpare() -> LuaFilter? { spares.popLast() }
}
