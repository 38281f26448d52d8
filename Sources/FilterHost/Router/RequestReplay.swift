import NIOCore
import NIOHTTP1

/// The request body and trailers as the router received them, kept so a retry or a mirror
/// can send the request again (Envoy buffers for retries and shadows the same way). Past
/// `limit` it is given up: no more retries or mirrors for this request, never any lost data.
struct RequestReplay {
    enum State {
        /// Everything received so far.
        case keeping(ByteBuffer)
        /// Over the limit while no attempt was in flight: kept until the next attempt
        /// replays it, then given up.
        case overLimitUntilReplayed(ByteBuffer)
        /// Given up: the body went over the limit.
        case abandoned
    }

    let limit: Int
    private(set) var state = State.keeping(ByteBuffer())
    private(set) var trailers: HTTPHeaders?

    init(limit: Int) { self.limit = limit }

    /// Whether the whole request can still be sent again.
    var canReplay: Bool {
        if case .keeping = state { return true }
        return false
    }

    /// What a new attempt sends after the head; nil once given up.
    var body: ByteBuffer? {
        switch state {
        case .keeping(let b), .overLimitUntilReplayed(let b): return b
        case .abandoned: return nil
        }
    }

    /// Adds a chunk. `inFlight`: an attempt took the chunk, so dropping the copy loses
    /// nothing. Returns true when this chunk made the body go over the limit.
    mutating func append(_ chunk: ByteBuffer, inFlight: Bool) -> Bool {
        switch state {
        case .keeping(var b):
            state = .abandoned  // drops the reference so the append does not copy
            b.writeImmutableBuffer(chunk)
            if b.readableBytes <= limit {
                state = .keeping(b)
                return false
            }
            state = inFlight ? .abandoned : .overLimitUntilReplayed(b)
            return true
        case .overLimitUntilReplayed(var b):
            if inFlight { return false }
            state = .abandoned
            b.writeImmutableBuffer(chunk)
            state = .overLimitUntilReplayed(b)
            return false
        case .abandoned:
            return false
        }
    }

    mutating func setTrailers(_ t: HTTPHeaders) { trailers = t }

    /// A new attempt sent the body: a body kept past the limit is given up now.
    mutating func replayed() {
        if case .overLimitUntilReplayed = state { state = .abandoned }
    }
}
