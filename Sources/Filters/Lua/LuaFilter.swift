import CLua
import NIOCore
import NIOHTTP1
import FilterHost
import Transport
import LuaRuntime
import MeshAPI

/// Runs a Lua plugin's `envoy_on_request` / `envoy_on_response` for one stream, each in
/// its own coroutine of the loop's VM. A script waiting for the body or an httpCall holds
/// the headers (`.stopIteration`); one reading chunks lets headers go at once.
///
/// Whether the plugin runs at all is decided at the request headers, from the route
/// (attachment, per-route `disabled` / `sourceCode`): a stream it does not run on passes
/// through without touching Lua.
///
/// A filter the factory made, whose runs all ended within their header callbacks (no body,
/// no wait, no httpCall, no reply, no failure), is kept by its VM when its stream ends and
/// serves a later stream on the same loop (`LuaVMHost`): nothing of the old stream can
/// reach it then, since nothing but the chain ever held it.
package final class LuaFilter: HTTPFilter {
    /// nil only while kept for another stream.
    package private(set) var factory: LuaFilterFactory!
    /// The VM this stream runs in; set once the plugin is known to run here.
    package private(set) var vm: LuaVM!
    private var decided = false
    private var unavailable = false
    /// Replaced when the filter is reused (a kept filter pins only the old stream's memory).
    package private(set) unowned var stream: StreamControl
    private var stats: StatsScope?
    /// Made by the factory, and nothing yet that could outlive the stream (a scheduled
    /// task, an httpCall) or that the stream still needs: may serve another stream.
    private var reusable: Bool
    /// Both directions' runs (request, then response), out of line so that the accessors
    /// below are addressors: a field access is a plain load or store. (A `_read` accessor
    /// copied the whole run into a heap-allocated coroutine frame on every read.)
    private let runs: UnsafeMutablePointer<LuaRun>
    /// The headers the script sees; swapped in from the callback so edits need no copy.
    package var reqHead = LuaFilter.noRequestHead()
    package var respHead = LuaFilter.noResponseHead()
    package var reqTrailers: HTTPHeaders?
    package var respTrailers: HTTPHeaders?
    /// Bytes of dynamic metadata this plugin set on the stream (`limits.maxDynamicMetadataBytes`).
    private var metadataBytes = 0
    /// Answers for a failed run (a script error, a limit, no VM) in place of the plugin's fail
    /// strategy: true when it answered the stream. Set by a filter that runs this one for
    /// its own purpose (a CUSTOM policy's Lua authorizer).
    package var failureHandler: ((_ overLimit: Bool) -> Bool)?
    private var inFlight: LuaInFlight?

    /// httpCall()s in flight from this stream (`limits.maxPendingCallsPerStream`).
    package var calls: LuaInFlight {
        if let inFlight { return inFlight }
        // A call may answer after the stream ended: this filter serves no other stream.
        reusable = false
        let calls = LuaInFlight(limit: vm.limits.maxPendingCallsPerStream)
        inFlight = calls
        return calls
    }

    /// `reusable`: made by the factory for an engine stream, so it may be kept for another
    /// stream when this one ends cleanly.
    package init(factory: LuaFilterFactory, stream: StreamControl, reusable: Bool = false) {
        self.factory = factory
        self.stream = stream
        self.reusable = reusable
        stats = stream.stats
        runs = .allocate(capacity: 2)
        // Each made in place: `initialize(repeating:)` copies one through value witnesses.
        runs.initialize(to: LuaRun())
        (runs + 1).initialize(to: LuaRun())
    }

    deinit {
        // Moved out one by one: `deinitialize(count:)` destroys through value witnesses.
        _ = runs.move()
        _ = (runs + 1).move()
        runs.deallocate()
    }

    /// One direction's run, reached in place (a getter would copy the whole struct,
    /// retains included, for every field read through it).
    package subscript(run response: Bool) -> LuaRun {
        unsafeAddress { UnsafePointer(runs + (response ? 1 : 0)) }
        unsafeMutableAddress { runs + (response ? 1 : 0) }
    }

    package var req: LuaRun {
        unsafeAddress { UnsafePointer(runs) }
        unsafeMutableAddress { runs }
    }

    package var resp: LuaRun {
        unsafeAddress { UnsafePointer(runs + 1) }
        unsafeMutableAddress { runs + 1 }
    }

    /// The route as this plugin sees it now: while the request headers are in its hands,
    /// selected from them (edits included) unless already cached.
    package var currentRoute: SelectedRoute? {
        if req.active && !req.headersPassed { return stream.route(for: reqHead) }
        return stream.route
    }

    /// Decides once whether the plugin runs on this stream. `route` is asked for only when
    /// the decision depends on it (a copy of the request head is not free).
    private func runs(route: @autoclosure () -> SelectedRoute?) -> Bool {
        if decided { return vm != nil }
        decided = true
        switch factory.resolve(route: factory.needsRoute ? route() : nil, loop: stream.eventLoop) {
        case .bypass:
            return false
        case .run(let vm):
            self.vm = vm
            return true
        case .unavailable:
            unavailable = true
            stats?.count(factory.plugin.errorsKey, 1)
            return false
        }
    }

    // MARK: request

    package func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        guard runs(route: stream.route(for: head) ?? stream.route) else {
            if unavailable, let failureHandler { return failureHandler(true) ? .stop : .continue }
            guard unavailable, factory.plugin.failStrategy == .failClose else { return .continue }
            stream.sendLocalReply(status: 500, body: "Internal Server Error", headers: [:], flag: nil, from: self)
            return .stop
        }
        guard vm.onRequestRef != LUA_NOREF || vm.loadError != nil else { return .continue }
        swap(&reqHead, &head)
        req.endSeen = endStream
        let status = headersStatus(false, start(false, entry: vm.onRequestRef))
        if status == .stopIteration { head = reqHead } else { swap(&reqHead, &head) }
        return status
    }

    package func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        onData(false, &data, endStream)
    }

    package func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        guard req.active else { return .continue }
        reqTrailers = trailers
        let status = onTrailers(false)
        trailers = reqTrailers ?? trailers
        return status
    }

    // MARK: response

    package func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        guard runs(route: stream.route) else { return .continue }
        guard vm.onResponseRef != LUA_NOREF || vm.loadError != nil else { return .continue }
        swap(&respHead, &head)
        resp.endSeen = endStream
        let status = headersStatus(true, start(true, entry: vm.onResponseRef))
        if status == .stopIteration { head = respHead } else { swap(&respHead, &head) }
        return status
    }

    package func onResponseData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        onData(true, &data, endStream)
    }

    package func onResponseTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        guard resp.active else { return .continue }
        respTrailers = trailers
        let status = onTrailers(true)
        trailers = respTrailers ?? trailers
        return status
    }

    package func onStreamComplete() {
        finishRun(false)
        finishRun(true)
        if reusable, failureHandler == nil, let vm { keepForReuse(in: vm) }
    }

    // MARK: reuse

    /// The stream ended cleanly: back to the state `init` makes, holding nothing (its VM
    /// keeps it, and the factory would keep the VM), kept for another stream of this loop.
    private func keepForReuse(in vm: LuaVM) {
        runs.pointee = LuaRun()
        (runs + 1).pointee = LuaRun()
        reqHead = Self.noRequestHead()
        respHead = Self.noResponseHead()
        reqTrailers = nil
        respTrailers = nil
        metadataBytes = 0
        decided = false
        self.vm = nil
        factory = nil
        stats = nil
        LuaVMHost.of(vm).keep(self)
    }

    /// What the heads hold outside the callbacks. Functions, not `static let`s: a global is
    /// a `swift_once` check per use, and every default argument here a call across modules.
    private static func noRequestHead() -> RequestHead {
        RequestHead(method: "", scheme: "", authority: "", path: "", headers: HTTPHeaders(), version: .http11)
    }

    private static func noResponseHead() -> ResponseHead { ResponseHead(status: 200, reason: nil, headers: HTTPHeaders()) }

    /// A kept filter taken for a new stream.
    package func reuse(factory: LuaFilterFactory, stream: StreamControl) {
        self.factory = factory
        self.stream = stream
        stats = stream.stats
    }

    /// The plugin runs in `vm` on this stream, whatever its route (the factory knows).
    package func decide(_ vm: LuaVM) {
        self.vm = vm
        decided = true
    }

    // MARK: both directions

    private func headersStatus(_ r: Bool, _ step: LuaStep) -> FilterHeadersStatus {
        // Anything but a run over within the callback may involve the stream later.
        if case .done = step {} else { reusable = false }
        switch step {
        case .done:
            return headersGoOn(r)
        case .failed(let message, let overLimit):
            return fail(r, message, overLimit: overLimit) ? .stop : headersGoOn(r)
        case .replied(let status, let headers, let body):
            stream.sendLocalReply(status: status, body: body, headers: headers, flag: nil, from: self)
            return .stop
        case .waiting(.body), .waiting(.trailers), .waiting(.httpCall):
            self[run: r].holding = true
            return .stopIteration
        case .waiting:
            self[run: r].headersPassed = true
            return .continue
        }
    }

    /// The run is over at the headers. A body the script made for a message without one
    /// (`body(true):setBytes(...)`) must follow them: they are held and released on the next
    /// tick, with it (a callback cannot hand on a body it did not get).
    private func headersGoOn(_ r: Bool) -> FilterHeadersStatus {
        guard self[run: r].bodyHeld, (self[run: r].body?.readableBytes ?? 0) > 0 else { return .continue }
        reusable = false
        self[run: r].holding = true
        stream.eventLoop.assumeIsolated().execute { [weak self] in self?.release(r) }
        return .stopIteration
    }

    private func onData(_ r: Bool, _ data: inout ByteBuffer, _ end: Bool) -> FilterDataStatus {
        guard self[run: r].active else { return .continue }
        if end { self[run: r].endSeen = true }
        switch self[run: r].wait {
        case .body:
            guard end else { return .stopAndBuffer }
            // The whole body: the engine also hands it over like this when trailers follow.
            self[run: r].endAmbiguous = true
            self[run: r].body = data
            data = ByteBuffer()
            let step = resume(r, push: .buffer)
            data = self[run: r].body ?? ByteBuffer()
            // Behind headers we still hold, the body can still change; otherwise it has gone.
            if case .waiting = step, self[run: r].holding { self[run: r].bodyHeld = true } else {
                self[run: r].bodyPassed = true
            }
            return afterStep(r, step)
        case .httpCall:
            // The body arrives while the script waits on a call with the headers held:
            // keep it whole for the script (body() after the call), behind the headers.
            guard self[run: r].holding else {
                self[run: r].held = .other
                return .stop
            }
            guard end else { return .stopAndBuffer }
            self[run: r].endAmbiguous = true
            self[run: r].body = data
            self[run: r].bodyHeld = true
            return .continue
        case .trailers:
            self[run: r].bodyPassed = true
            guard end else { return .continue }
            let step = resume(r, push: nil)
            if case .waiting(.httpCall) = step, !self[run: r].holding {
                self[run: r].held = .other
                return .stop
            }
            return afterStep(r, step)
        case .chunk:
            self[run: r].chunkSerial += 1
            swap(&self[run: r].chunk, &data)
            let step = resume(r, push: .buffer, aux: self[run: r].chunkSerial)
            if case .waiting(.httpCall) = step {
                // The script waits on a call with this chunk in hand: it stays here until then.
                data = self[run: r].chunk
                self[run: r].held = .chunk
                return .stop
            }
            swap(&self[run: r].chunk, &data)
            self[run: r].chunk = ByteBuffer()
            return afterStep(r, step)
        case .none, .respond:
            return .continue
        }
    }

    private func onTrailers(_ r: Bool) -> FilterHeadersStatus {
        self[run: r].trailersSeen = true
        self[run: r].endSeen = true
        let step: LuaStep
        switch self[run: r].wait {
        case .trailers: step = resume(r, push: .headers, aux: 1)
        case .body where self[run: r].wrapBody:
            // No body came, only trailers: the script gets an empty one, held with the headers.
            self[run: r].body = ByteBuffer()
            self[run: r].bodyHeld = true
            self[run: r].bodyMade = true
            step = resume(r, push: .buffer)
        case .body, .chunk: step = resume(r, push: nil)
        case .httpCall:
            // They wait behind the held headers, or here, until the call is answered.
            self[run: r].trailersPassed = true
            if self[run: r].holding { return .continue }
            self[run: r].held = .other
            return .stop
        case .none, .respond: return .continue
        }
        self[run: r].trailersPassed = true
        if case .waiting(.httpCall) = step, !self[run: r].holding {
            self[run: r].held = .other
            return .stop
        }
        _ = afterStep(r, step)
        return .continue
    }

    /// What to do once the script has seen a body chunk, the body or the trailers.
    private func afterStep(_ r: Bool, _ step: LuaStep) -> FilterDataStatus {
        switch step {
        case .done:
            release(r)
        case .failed(let message, let overLimit):
            if !fail(r, message, overLimit: overLimit) { release(r) }
        case .replied(let status, let headers, let body):
            stream.sendLocalReply(status: status, body: body, headers: headers, flag: nil, from: self)
        case .waiting(.trailers) where self[run: r].endSeen:
            // Trailers follow a buffered body within the same pass, or never: check on the next tick.
            stream.eventLoop.assumeIsolated().execute { [weak self] in self?.trailersNeverCame(r) }
        case .waiting:
            break
        }
        return .continue
    }

    private func trailersNeverCame(_ r: Bool) {
        guard self[run: r].active, self[run: r].wait == .trailers, !self[run: r].trailersSeen else { return }
        noTrailers(r)
    }

    /// The body ended without trailers: trailers() answers nil, now and from then on.
    private func noTrailers(_ r: Bool) {
        self[run: r].endAmbiguous = false
        proceed(r, resume(r, push: nil))
    }

    /// A run resumed outside a filter callback (an httpCall answered, trailers that never
    /// came): lets go of what it held once it no longer needs it.
    private func proceed(_ r: Bool, _ step: LuaStep) {
        switch step {
        case .done:
            letGo(r)
        case .failed(let message, let overLimit):
            if !fail(r, message, overLimit: overLimit) { letGo(r) }
        case .replied(let status, let headers, let body):
            stream.sendLocalReply(status: status, body: body, headers: headers, flag: nil, from: self)
        case .waiting(.chunk):
            // bodyChunks() after a call made with the headers held: they go on now.
            letGo(r)
        case .waiting(.trailers):
            if self[run: r].holding {
                // The end already came during the call (with no trailers): they never will.
                if self[run: r].endSeen { noTrailers(r) }
            } else {
                letGo(r)
            }
        case .waiting:
            // body(): the headers are still held and the body collects here; httpCall: wait again.
            break
        }
    }

    /// Lets go of held headers (with the script's edits and body) or a held chunk.
    private func letGo(_ r: Bool) {
        if self[run: r].holding { return release(r) }
        let held = self[run: r].held
        self[run: r].held = .none
        switch held {
        case .none:
            return
        case .chunk:
            let chunk = self[run: r].chunk
            self[run: r].chunk = ByteBuffer()
            if r {
                stream.continueResponse(from: self, replacingHead: nil, replacingData: chunk)
            } else {
                stream.continueRequest(from: self, replacingHead: nil, replacingData: chunk)
            }
        case .other:
            if r { stream.continueResponse(from: self) } else { stream.continueRequest(from: self) }
        }
    }

    /// Lets held headers go, with the script's edits (and its body, when that waits behind them).
    private func release(_ r: Bool) {
        guard self[run: r].holding else { return }
        self[run: r].holding = false
        self[run: r].headersPassed = true
        var body: ByteBuffer?
        if self[run: r].bodyHeld {
            self[run: r].bodyHeld = false
            self[run: r].bodyPassed = true
            body = self[run: r].body
            if self[run: r].bodyMade, body?.readableBytes == 0 { body = nil }
        }
        if r {
            stream.continueResponse(from: self, replacingHead: respHead, replacingData: body)
        } else {
            stream.continueRequest(from: self, replacingHead: reqHead, replacingData: body)
        }
    }

    /// Counts and logs a failed run; FAIL_CLOSE answers 500, or 503 when a limit ended the
    /// run (the plugin is unavailable rather than wrong, as Envoy fails a Wasm VM). True when
    /// the stream was answered.
    private func fail(_ r: Bool, _ message: String, overLimit: Bool) -> Bool {
        reusable = false
        vm.errors += 1
        vm.lastError = message
        stats?.count(vm.plugin.errorsKey, 1)
        vm.logger.error("lua plugin \(vm.plugin.name) failed in \(r ? "envoy_on_response" : "envoy_on_request"): \(message)")
        if let failureHandler { return failureHandler(overLimit) }
        guard vm.plugin.failStrategy == .failClose else { return false }
        if overLimit {
            stream.sendLocalReply(status: 503, body: "Service Unavailable", headers: [:], flag: nil, from: self)
        } else {
            stream.sendLocalReply(status: 500, body: "Internal Server Error", headers: [:], flag: nil, from: self)
        }
        return true
    }

    /// `dynamicMetadata():set`: the stream's metadata outlives the script, so what a plugin
    /// may put there is bounded per stream.
    package func setDynamicMetadata(_ ns: String, _ key: String, _ value: JSONValue) throws {
        let old = stream.streamInfo.dynamicMetadata[ns]?[key].map { ns.utf8.count + key.utf8.count + Self.size(of: $0) } ?? 0
        let total = max(0, metadataBytes - old) + ns.utf8.count + key.utf8.count + Self.size(of: value)
        let limit = vm.limits.maxDynamicMetadataBytes
        guard total <= limit else { throw LuaRaise("dynamic metadata limit exceeded (\(limit) bytes per stream)") }
        metadataBytes = total
        stream.streamInfo.dynamicMetadata[ns, default: [:]][key] = value
    }

    /// What a metadata value costs against the per-stream limit: its text, keys included.
    private static func size(of value: JSONValue) -> Int {
        switch value {
        case .string(let s): return s.utf8.count
        case .number, .bool, .null: return 8
        case .array(let items): return items.reduce(8) { $0 + size(of: $1) }
        case .object(let fields): return fields.reduce(8) { $0 + $1.key.utf8.count + size(of: $1.value) }
        }
    }

    // MARK: httpCall

    /// The answer to the synchronous call run `r` waits on: the script resumes with
    /// `(headers, body_or_nil)`.
    package func httpCallFinished(_ r: Bool, _ call: LuaHTTPCall, _ answer: LuaHTTPCall.Answer) {
        guard self[run: r].active, self[run: r].wait == .httpCall, self[run: r].call === call else { return }
        self[run: r].call = nil
        let step = resume(r) { thread in
            answer.push(thread)
            return 2
        }
        proceed(r, step)
    }

    // MARK: coroutine

    private func start(_ r: Bool, entry: Int32) -> LuaStep {
        let vm = self.vm!
        if let error = vm.loadError { return .failed(error, overLimit: vm.loadExceededLimit) }
        // The entry point and the handle are on the coroutine's stack already.
        let started = vm.beginRun(owner: self, response: r, entry: entry)
        let run = runs + (r ? 1 : 0)
        run.pointee.thread = started.thread
        run.pointee.threadRef = started.ref
        run.pointee.slot = started.slot
        run.pointee.gen = started.gen
        run.pointee.active = true
        return resume(r) { _ in 1 }
    }

    /// Resumes the run with one value: a new object of `kind` or nil.
    private func resume(_ r: Bool, push kind: LuaKind?, aux: UInt64 = 0) -> LuaStep {
        let slot = self[run: r].slot, gen = self[run: r].gen, vm = self.vm!
        return resume(r) { thread in
            if let kind {
                // The handle came with the run (`beginRun`): these are bodies and trailers.
                LuaObjects.push(thread, vm, kind, slot: slot, gen: gen, aux: aux, ptr: nil, userValues: 0)
            } else {
                lua_pushnil(thread)
            }
            return 1
        }
    }

    /// Resumes the run with the values `push` leaves on its coroutine (it returns how many).
    private func resume(_ r: Bool, _ push: (OpaquePointer) -> Int32) -> LuaStep {
        let run = runs + (r ? 1 : 0)
        guard let thread = run.pointee.thread else { return .done }
        run.pointee.wait = .none
        let nargs = push(thread)
        let outcome = vm.resume(thread, nargs: nargs, elapsed: &run.pointee.ns)
        switch outcome {
        case .finished:
            finishRun(r)
            return .done
        case .failed(let message):
            finishRun(r)
            return .failed(message, overLimit: false)
        case .exceeded(let message):
            finishRun(r)
            return .failed(message, overLimit: true)
        case .yielded:
            let wait = self[run: r].wait
            switch wait {
            case .none:
                finishRun(r)
                return .failed("script performed an unexpected yield", overLimit: false)
            case .respond:
                let reply = self[run: r].reply!
                finishRun(r)
                return .replied(status: reply.status, headers: reply.headers, body: reply.body)
            default:
                return .waiting(wait)
            }
        }
    }

    /// Ends the coroutine (finished, failed, replied or abandoned): every object of the run dies.
    private func finishRun(_ r: Bool) {
        guard self[run: r].active, let thread = self[run: r].thread else { return }
        if let call = self[run: r].call {
            self[run: r].call = nil
            call.cancel()
        }
        let vm = self.vm!, run = runs + (r ? 1 : 0)
        let us = vm.endRun(thread: thread, ref: run.pointee.threadRef, slot: run.pointee.slot, ns: run.pointee.ns)
        run.pointee.active = false
        run.pointee.thread = nil
        run.pointee.wait = .none
        run.pointee.iterating = 0
        run.pointee.ns = 0
        if let stats { LuaVMHost.of(vm).tally.add(micros: us, to: stats, on: stream.eventLoop) }
    }
}
