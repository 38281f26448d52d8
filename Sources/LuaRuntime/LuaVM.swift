import CLua
import CLuaGuard
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// One running script occupies a slot; Lua objects name their slot and its generation,
/// so an object that outlived its run is refused instead of reaching a freed filter.
/// The owner is the filter that runs the script (the runtime does not know its type).
package struct LuaSlot {
    package var owner: AnyObject?
    package var response = false
    package var gen: UInt64 = 0
}

/// A run `LuaVM.beginRun` opened: its coroutine (and registry ref) and its slot.
package struct LuaRunStart {
    package let thread: OpaquePointer
    package let ref: Int32
    package let slot: UInt32
    package let gen: UInt64
}

/// How one resume of a script's coroutine ended.
package enum LuaResumeOutcome {
    case finished
    case yielded
    case failed(String)
    /// A limit (instruction budget, time) ended it; no pcall in the script could stop that.
    case exceeded(String)
}

/// Host operations in flight for a VM or a stream (httpCall), counted against a limit.
/// A class: an operation may outlive the stream (and the VM) that started it.
package final class LuaInFlight {
    package let limit: Int
    package private(set) var count = 0

    package init(limit: Int) { self.limit = limit }

    package var isFull: Bool { count >= limit }
    package func enter() { count += 1 }
    package func leave() { count -= 1 }
}

/// One Lua state for one script version on one event loop (DESIGN principle 5): the
/// script's top-level code runs once here, and each stream runs in a coroutine of it.
/// Touched only on its loop.
package final class LuaVM {
    package let script: LuaScript
    package let limits: LuaLimits
    package let plugin: LuaPluginConfig
    package let library: LuaHostLibrary
    package let logger: Logger
    package let L: OpaquePointer
    private let ctl: UnsafeMutablePointer<meshd_vm_ctl>
    /// Registry refs of the entry points, looked up once; LUA_NOREF when the script has none.
    package private(set) var onRequestRef = LUA_NOREF
    package private(set) var onResponseRef = LUA_NOREF
    /// The top-level code failed: every run fails the same way.
    package private(set) var loadError: String?
    /// A limit (instructions, time) ended the top-level code.
    package private(set) var loadExceededLimit = false
    /// Registry refs of the metatable of each object kind, made once.
    package var metatables: [Int32] = []
    /// The plugin config as a Lua table, built once (filterContext()).
    package var filterContextRef = LUA_NOREF
    package var sharedDicts: [LuaSharedDict] = []
    private var slots: [LuaSlot] = []
    private var freeSlots: [UInt32] = []
    private var nextGen: UInt64 = 1
    private var idleThreads: [(thread: OpaquePointer, ref: Int32)] = []
    /// Coroutines a limit ended: the hook raised the error from inside itself, which leaves
    /// Lua's hooks off in that coroutine, so it is neither closed (no __close handler may run
    /// unbounded) nor reused.
    private var endedByLimit: Set<OpaquePointer> = []
    /// Counters for this loop; the filter also adds them to the loop's stats.
    package var executions = 0
    package var errors = 0
    /// The last failure, for diagnostics and tests.
    package var lastError: String?
    package var timeNs: UInt64 = 0
    private var pendingNs: UInt64 = 0
    /// httpCall()s in flight from this VM's streams.
    package let calls: LuaInFlight
    /// What the host keeps per VM (the Lua filter's stats tally); the runtime never looks inside.
    package var hostState: AnyObject?

    /// VMs alive in the process, over every loop and version (`meshd_lua_vms`): old
    /// versions' VMs go once their last snapshot and stream are gone.
    package static let live = NIOLockedValueBox(0)

    /// `logger` replaces the process logger (`meshd plugin test` collects the script's lines).
    package init?(plugin: LuaPluginConfig, library: LuaHostLibrary, logger: Logger? = nil) {
        self.script = plugin.script
        self.limits = plugin.limits
        self.plugin = plugin
        self.library = library
        var logger = logger ?? Logger(label: "meshd.lua")
        logger[metadataKey: "plugin"] = .string(plugin.name)
        self.logger = logger
        calls = LuaInFlight(limit: plugin.limits.maxPendingCalls)
        ctl = .allocate(capacity: 1)
        ctl.initialize(to: meshd_vm_ctl())
        ctl.pointee.limit = max(plugin.limits.memoryBytes, 1 << 16)
        guard let state = meshd_guard_newstate(ctl) else {
            ctl.deallocate()
            return nil
        }
        L = state
        Self.live.withLockedValue { $0 += 1 }
        ctl.pointee.host = Unmanaged.passUnretained(self).toOpaque()
        // Generational GC suits many short-lived per-request objects.
        _ = meshd_lua_gc(L, LUA_GCGEN, 0, 0)
        LuaSandbox.open(self)
        LuaObjects.registerMetatables(self, library: library)
        loadScript()
    }

    deinit {
        lua_close(L)
        ctl.deallocate()
        Self.live.withLockedValue { $0 -= 1 }
    }

    package var memoryInUse: Int { ctl.pointee.used }
    package var memoryLimit: Int { ctl.pointee.limit }

    /// For host functions that loop over script data: true once the slice is over its time
    /// (the script then fails with the time budget's message, whatever it catches).
    package var sliceExpired: Bool { meshd_guard_expired(ctl) != 0 }

    /// The message of the limit that ended the last slice, if one did.
    private var tripMessage: String? {
        switch ctl.pointee.trip {
        case MESHD_TRIP_BUDGET: return "instruction budget exceeded"
        case MESHD_TRIP_TIME: return "time budget exceeded (\(limits.maxRunMs) ms)"
        default: return nil
        }
    }

    package func collectGarbage() { _ = meshd_lua_gc(L, LUA_GCCOLLECT, 0, 0) }

    private func loadScript() {
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        guard LuaScript.load(L, source: script.source, name: script.name) == LUA_OK else {
            loadError = LuaVM.message(L)
            return
        }
        arm(L)
        let status = meshd_lua_pcall(L, 0, 0, 0)
        disarm()
        guard status == LUA_OK, tripMessage == nil else {
            loadExceededLimit = tripMessage != nil
            loadError = tripMessage ?? LuaVM.message(L)
            logger.error("lua plugin top-level code failed: \(loadError!)")
            return
        }
        onRequestRef = globalFunctionRef("envoy_on_request")
        onResponseRef = globalFunctionRef("envoy_on_response")
    }

    private func globalFunctionRef(_ name: String) -> Int32 {
        guard lua_getglobal(L, name) == LUA_TFUNCTION else {
            meshd_lua_pop(L, 1)
            return LUA_NOREF
        }
        return luaL_ref(L, meshd_lua_registryindex())
    }

    /// The error object on top of `L` as text.
    package static func message(_ L: OpaquePointer) -> String {
        if let s = meshd_lua_tostring(L, -1) { return String(cString: s) }
        return "(error object is a \(String(cString: lua_typename(L, lua_type(L, -1)))) value)"
    }

    /// Adds a run's time; returns whole microseconds to count, carrying the remainder.
    package func addTime(_ ns: UInt64) -> Int {
        let total = pendingNs &+ ns
        pendingNs = total % 1000
        return Int(total / 1000)
    }

    // MARK: limits

    /// Starts a slice of Lua execution on `thread`: the memory cap, a fresh instruction
    /// budget and the time bound (watched from outside the loop) apply.
    /// Returns the clock at the start (CLOCK_MONOTONIC, ns).
    @discardableResult
    private func arm(_ thread: OpaquePointer) -> UInt64 {
        let start = meshd_guard_arm(ctl, thread, Int64(limits.instructions), UInt64(limits.maxRunMs))
        ctl.pointee.enforce = 1
        return start
    }

    private func disarm() {
        ctl.pointee.enforce = 0
        meshd_guard_disarm(ctl)
    }

    // MARK: slots

    package func openSlot(_ owner: AnyObject, response: Bool) -> (slot: UInt32, gen: UInt64) {
        let gen = nextGen
        nextGen += 1
        let entry = LuaSlot(owner: owner, response: response, gen: gen)
        if let slot = freeSlots.popLast() {
            slots[Int(slot)] = entry
            return (slot, gen)
        }
        slots.append(entry)
        return (UInt32(slots.count - 1), gen)
    }

    package func closeSlot(_ slot: UInt32) {
        slots[Int(slot)] = LuaSlot()
        freeSlots.append(slot)
    }

    /// The live run an object belongs to, or nil when its run is over.
    @inline(__always)
    package func lookup(slot: UInt32, gen: UInt64) -> LuaSlot? {
        guard Int(slot) < slots.count else { return nil }
        let entry = slots[Int(slot)]
        return entry.gen == gen && entry.owner != nil ? entry : nil
    }

    /// The owner and direction of the live run an object belongs to, read in place (a host
    /// call asks on every method call). The owner stays in the slot table while its run lives.
    @inline(__always)
    package func liveOwner(slot: UInt32, gen: UInt64) -> (owner: Unmanaged<AnyObject>, response: Bool)? {
        guard Int(slot) < slots.count, slots[Int(slot)].gen == gen, let owner = slots[Int(slot)].owner else { return nil }
        return (Unmanaged.passUnretained(owner), slots[Int(slot)].response)
    }

    // MARK: runs

    /// Opens a run for `owner`: a coroutine with the entry point `entry` and a new handle
    /// (with room for its header map) on its stack, ready for `resume(nargs: 1)`. One call
    /// for what each run needs first.
    package func beginRun(owner: AnyObject, response: Bool, entry: Int32) -> LuaRunStart {
        let (thread, ref) = acquireThread()
        let (slot, gen) = openSlot(owner, response: response)
        lua_rawgeti(thread, meshd_lua_registryindex(), lua_Integer(entry))
        LuaObjects.push(thread, self, .handle, slot: slot, gen: gen, aux: 0, ptr: nil, userValues: 1)
        return LuaRunStart(thread: thread, ref: ref, slot: slot, gen: gen)
    }

    /// Ends a run opened by `beginRun`: its coroutine goes back, its slot closes (every
    /// object of the run dies), it is counted. Returns the whole microseconds of `ns` to
    /// count (the remainder is carried).
    package func endRun(thread: OpaquePointer, ref: Int32, slot: UInt32, ns: UInt64) -> Int {
        releaseThread(thread, ref: ref)
        closeSlot(slot)
        executions += 1
        return addTime(ns)
    }

    // MARK: coroutines

    /// A coroutine for one run, reused from earlier runs when possible.
    package func acquireThread() -> (thread: OpaquePointer, ref: Int32) {
        if let idle = idleThreads.popLast() { return idle }
        let thread = lua_newthread(L)!
        meshd_guard_mark_handler(L)
        return (thread, luaL_ref(L, meshd_lua_registryindex()))
    }

    /// Takes a coroutine back; one that did not finish cleanly is closed first.
    package func releaseThread(_ thread: OpaquePointer, ref: Int32) {
        if !endedByLimit.isEmpty, endedByLimit.remove(thread) != nil {
            luaL_unref(L, meshd_lua_registryindex(), ref)
            return
        }
        if lua_status(thread) != LUA_OK || lua_gettop(thread) != 0 {
            // Pending __close handlers run now: under the limits like any slice.
            arm(thread)
            _ = meshd_lua_closethread(thread)
            disarm()
            lua_settop(thread, 0)
        }
        if idleThreads.count < 64 {
            idleThreads.append((thread, ref))
        } else {
            luaL_unref(L, meshd_lua_registryindex(), ref)
        }
    }

    /// Resumes `thread` with `nargs` values on its stack, under the budget and memory cap.
    /// The time it ran is added to `elapsed` (and to `timeNs`).
    package func resume(_ thread: OpaquePointer, nargs: Int32, elapsed: inout UInt64) -> LuaResumeOutcome {
        var nres: Int32 = 0
        let start = arm(thread)
        let status = lua_resume(thread, nil, nargs, &nres)
        disarm()
        let ns = meshd_guard_now_ns() &- start
        timeNs &+= ns
        elapsed &+= ns
        if let limit = tripMessage {
            // Whatever the status: a host call may have yielded in the instant after the trip.
            if status == LUA_YIELD { meshd_lua_pop(thread, nres) }
            endedByLimit.insert(thread)
            return .exceeded(limit)
        }
        switch status {
        case LUA_OK:
            lua_settop(thread, 0)
            return .finished
        case LUA_YIELD:
            meshd_lua_pop(thread, nres)
            return .yielded
        default:
            let message = LuaVM.message(thread)
            lua_settop(thread, 0)
            return .failed(message)
        }
    }
}
