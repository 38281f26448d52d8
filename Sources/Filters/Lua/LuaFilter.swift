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
package final class LuaFilter: HTTPFilter {
    package let factory: LuaFilterFactory
    /// The VM this stream runs in; set once the plugin is known to run here.
    package private(set) var vm: LuaVM!
    private var decided = false
    private var unavailable = false
    package unowned let stream: StreamControl
    private let stats: StatsScope?
    /// Both directions' runs (request, then response), out of line so that the accessors
    /// below are addressors: a field access is a plain load or store. (A `_read` accessor
    /// copied the whole run into a heap-allocated coroutine frame on every read.)
    private let runs: UnsafeMutablePointer<LuaRun>
    /// The headers the script sees; swapped in from the callback so edits need no copy.
    package var reqHead = LuaFilter.emptyRequest
    package var respHead = ResponseHead(status: 200)
    package var reqTrailers: HTTPHeaders?
    package var respTrailers: HTTPHeaders?
    /// Bytes of dynamic metadata this plugin set on the stream (`limits.maxDynamicMetadataBytes`).
    private var metadataBytes = 0
    /// Answers for a failed run (a script error, a limit, no VM) in place of the plugin's fail
    /// strategy: true when it answered the stream. Set by a filter that runs this one for
    /// its own purpose (a CUSTOM policy's Lua authorizer).
    package var failureHandler: ((_ overLimit: Bool) -> Bool)?
    /// httpCall()s in flight from this stream (`limits.maxPendingCallsPerStream`).
    package private(set) lazy var calls = LuaInFlight(limit: vm.limits.maxPendingCallsPerStream)

    package static let emptyRequest = RequestHead(method: "", scheme: "", authority: "", path: "", headers: [:], version: .http11)

    package init(factory: LuaFilterFactory, stream: StreamControl) {
        self.factory = factory
        self.stream = stream
        stats = stream.stats
        runs = .allocate(capacity: 2)
        runs.initialize(repeating: LuaRun(), count: 2)
    }

    deinit {
        runs.deinitialize(count: 2)
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
    }

    // MARK: both directions

    private func headersStatus(_ r: Bool, _ step: LuaStep) -> FilterHeadersStatus {
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
        if let error = vm.loadError { return .failed(error, overLimit: vm.loadExceededLimit) }
        let (thread, ref) = vm.acquireThread()
        let (slot, gen) = vm.openSlot(self, response: r)
        self[run: r].thread = thread
        self[run: r].threadRef = ref
        self[run: r].slot = slot
        self[run: r].gen = gen
        self[run: r].active = true
        lua_rawgeti(thread, meshd_lua_registryindex(), lua_Integer(entry))
        return resume(r, push: .handle)
    }

    /// Resumes the run with one value: a new object of `kind` or nil.
    private func resume(_ r: Bool, push kind: LuaKind?, aux: UInt64 = 0) -> LuaStep {
        let slot = self[run: r].slot, gen = self[run: r].gen, vm = self.vm!
        return resume(r) { thread in
            if let kind {
                // A handle keeps the header map it handed out (user value 1): scripts call
                // headers() again and again.
                LuaObjects.push(thread, vm, kind, slot: slot, gen: gen, aux: aux, userValues: kind == .handle ? 1 : 0)
            } else {
                lua_pushnil(thread)
            }
            return 1
        }
    }

    /// Resumes the run with the values `push` leaves on its coroutine (it returns how many).
    private func resume(_ r: Bool, _ push: (OpaquePointer) -> Int32) -> LuaStep {
        guard let thread = self[run: r].thread else { return .done }
        self[run: r].wait = .none
        let nargs = push(thread)
        let before = vm.timeNs
        let outcome = vm.resume(thread, nargs: nargs)
        self[run: r].ns &+= vm.timeNs &- before
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
        vm.releaseThread(thread, ref: self[run: r].threadRef)
        vm.closeSlot(self[run: r].slot)
        self[run: r].active = false
        self[run: r].thread = nil
        self[run: r].wait = .none
        self[run: r].iterating = 0
        vm.executions += 1
        let us = vm.addTime(self[run: r].ns)
        self[run: r].ns = 0
        if let stats { LuaRunTally.of(vm).add(micros: us, to: stats, on: stream.eventLoop) }
    }
}
