import CLua
import NIOCore
import NIOHTTP1

/// Runs a Lua plugin's `envoy_on_request` / `envoy_on_response` for one stream, each in
/// its own coroutine of the loop's VM. A script waiting for the body holds the headers
/// (`.stopIteration`) and has the body buffered; one reading chunks lets headers go at once.
final class LuaFilter: HTTPFilter {
    let vm: LuaVM
    unowned let stream: StreamControl
    private let stats: LoopStats?
    var req = LuaRun()
    var resp = LuaRun()
    /// The headers the script sees; swapped in from the callback so edits need no copy.
    var reqHead = LuaFilter.emptyRequest
    var respHead = ResponseHead(status: 200)
    var reqTrailers: HTTPHeaders?
    var respTrailers: HTTPHeaders?

    static let emptyRequest = RequestHead(method: "", scheme: "", authority: "", path: "", headers: [:], version: .http11)

    init(vm: LuaVM, stream: StreamControl) {
        self.vm = vm
        self.stream = stream
        stats = (stream as? HTTPStream)?.loop.stats
    }

    subscript(run response: Bool) -> LuaRun {
        get { response ? resp : req }
        _modify {
            if response { yield &resp } else { yield &req }
        }
    }

    // MARK: request

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        guard vm.onRequestRef != LUA_NOREF || vm.loadError != nil else { return .continue }
        swap(&reqHead, &head)
        req.endSeen = endStream
        let status = headersStatus(false, start(false, entry: vm.onRequestRef))
        if status == .stopIteration { head = reqHead } else { swap(&reqHead, &head) }
        return status
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        onData(false, &data, endStream)
    }

    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        guard req.active else { return .continue }
        reqTrailers = trailers
        let status = onTrailers(false)
        trailers = reqTrailers ?? trailers
        return status
    }

    // MARK: response

    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        guard vm.onResponseRef != LUA_NOREF || vm.loadError != nil else { return .continue }
        swap(&respHead, &head)
        resp.endSeen = endStream
        let status = headersStatus(true, start(true, entry: vm.onResponseRef))
        if status == .stopIteration { head = respHead } else { swap(&respHead, &head) }
        return status
    }

    func onResponseData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        onData(true, &data, endStream)
    }

    func onResponseTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        guard resp.active else { return .continue }
        respTrailers = trailers
        let status = onTrailers(true)
        trailers = respTrailers ?? trailers
        return status
    }

    func onStreamComplete() {
        finishRun(false)
        finishRun(true)
    }

    // MARK: both directions

    private func headersStatus(_ r: Bool, _ step: LuaStep) -> FilterHeadersStatus {
        switch step {
        case .done:
            return .continue
        case .failed(let message):
            return fail(r, message) ? .stop : .continue
        case .replied(let status, let headers, let body):
            stream.sendLocalReply(status: status, body: body, headers: headers, flag: nil, from: self)
            return .stop
        case .waiting(.body), .waiting(.trailers):
            self[run: r].holding = true
            return .stopIteration
        case .waiting:
            self[run: r].headersPassed = true
            return .continue
        }
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
            self[run: r].bodyPassed = true
            return afterStep(r, step)
        case .trailers:
            self[run: r].bodyPassed = true
            guard end else { return .continue }
            return afterStep(r, resume(r, push: nil))
        case .chunk:
            self[run: r].chunkSerial += 1
            swap(&self[run: r].chunk, &data)
            let step = resume(r, push: .buffer, aux: self[run: r].chunkSerial)
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
            self[run: r].body = ByteBuffer()
            step = resume(r, push: .buffer)
        case .body, .chunk: step = resume(r, push: nil)
        case .none, .respond: return .continue
        }
        self[run: r].trailersPassed = true
        _ = afterStep(r, step)
        return .continue
    }

    /// What to do once the script has seen a body chunk, the body or the trailers.
    private func afterStep(_ r: Bool, _ step: LuaStep) -> FilterDataStatus {
        switch step {
        case .done:
            release(r)
        case .failed(let message):
            if !fail(r, message) { release(r) }
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
        _ = afterStep(r, resume(r, push: nil))
    }

    /// Lets held headers go, with the script's edits.
    private func release(_ r: Bool) {
        guard self[run: r].holding else { return }
        self[run: r].holding = false
        self[run: r].headersPassed = true
        if r {
            stream.continueResponse(from: self, replacingHead: respHead)
        } else {
            stream.continueRequest(from: self, replacingHead: reqHead)
        }
    }

    /// Counts and logs a failed run; FAIL_CLOSE answers 500. True when the stream was answered.
    private func fail(_ r: Bool, _ message: String) -> Bool {
        vm.errors += 1
        vm.lastError = message
        stats?.count(vm.plugin.errorsKey)
        vm.logger.error("lua plugin \(vm.plugin.name) failed in \(r ? "envoy_on_response" : "envoy_on_request"): \(message)")
        guard vm.plugin.failStrategy == .failClose else { return false }
        stream.sendLocalReply(status: 500, body: "Internal Server Error", headers: [:], flag: nil, from: self)
        return true
    }

    // MARK: coroutine

    private func start(_ r: Bool, entry: Int32) -> LuaStep {
        if let error = vm.loadError { return .failed(error) }
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
        guard let thread = self[run: r].thread else { return .done }
        self[run: r].wait = .none
        if let kind {
            LuaObjects.push(thread, vm, kind, slot: self[run: r].slot, gen: self[run: r].gen, aux: aux)
        } else {
            lua_pushnil(thread)
        }
        let before = vm.timeNs
        let outcome = vm.resume(thread, nargs: 1)
        self[run: r].ns &+= vm.timeNs &- before
        switch outcome {
        case .finished:
            finishRun(r)
            return .done
        case .failed(let message):
            finishRun(r)
            return .failed(message)
        case .yielded:
            let wait = self[run: r].wait
            switch wait {
            case .none:
                finishRun(r)
                return .failed("script performed an unexpected yield")
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
        vm.releaseThread(thread, ref: self[run: r].threadRef)
        vm.closeSlot(self[run: r].slot)
        self[run: r].active = false
        self[run: r].thread = nil
        self[run: r].wait = .none
        self[run: r].iterating = 0
        vm.executions += 1
        let us = vm.addTime(self[run: r].ns)
        self[run: r].ns = 0
        if let stats {
            stats.count(vm.plugin.executionsKey)
            if us > 0 { stats.count(vm.plugin.timeKey, us) }
        }
    }
}
