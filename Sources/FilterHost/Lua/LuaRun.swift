import NIOCore
import NIOHTTP1

/// What a suspended script is waiting for.
enum LuaWait {
    case none
    /// The whole body (`body()`); the headers are held meanwhile.
    case body
    /// The next body chunk (`bodyChunks()`); the headers have gone on.
    case chunk
    /// The trailers or the end of the stream (`trailers()`).
    case trailers
    /// `respond()` was called: the run is over and the reply goes out.
    case respond
    /// A synchronous `httpCall()`: what the filter was given waits here until the answer.
    case httpCall
}

/// An event the filter holds past itself (`.stop`) while its script waits on an httpCall.
enum LuaHeldEvent {
    case none
    /// A body chunk the script has in hand (it may still replace it).
    case chunk
    /// The last chunk or the trailers, after the script saw the end of the body.
    case other
}

/// One direction's script run (envoy_on_request or envoy_on_response) on one stream.
struct LuaRun {
    var thread: OpaquePointer?
    var threadRef: Int32 = 0
    var slot: UInt32 = 0
    var gen: UInt64 = 0
    /// The coroutine exists: started and not yet over.
    var active = false
    var wait = LuaWait.none
    /// We hold the headers (`.stopIteration`) and will release them with our copy.
    var holding = false
    /// The headers went on to the next filter: read-only from now on.
    var headersPassed = false
    var trailersPassed = false
    /// Header maps being iterated by pairs(): bit 0 headers, bit 1 trailers.
    var iterating: UInt8 = 0
    /// No more body will arrive.
    var endSeen = false
    /// The end came with a buffered body, which the engine also delivers when trailers follow.
    var endAmbiguous = false
    var trailersSeen = false
    /// `body(true)`: an empty buffer rather than nil when there is no body.
    var wrapBody = false
    /// The whole body, while the script may still read it.
    var body: ByteBuffer?
    /// The body went on (or streamed past): body() and setBytes are no longer possible.
    var bodyPassed = false
    /// The whole body waits behind the headers we hold: it goes on, as the script left it,
    /// when they are released.
    var bodyHeld = false
    var held = LuaHeldEvent.none
    /// The synchronous httpCall the script waits on.
    var call: LuaHTTPCall?
    var streaming = false
    var chunk = ByteBuffer()
    var chunkSerial: UInt64 = 0
    var reply: (status: Int, headers: HTTPHeaders, body: String)?
    var ns: UInt64 = 0
}

/// How a step of a run ended, for the filter callback to act on.
enum LuaStep {
    case done
    case waiting(LuaWait)
    case replied(status: Int, headers: HTTPHeaders, body: String)
    case failed(String)
}
