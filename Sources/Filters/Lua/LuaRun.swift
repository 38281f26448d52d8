import NIOCore
import NIOHTTP1
import FilterHost
import Transport
import LuaRuntime
import MeshAPI

/// What a suspended script is waiting for.
package enum LuaWait {
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
package enum LuaHeldEvent {
    case none
    /// A body chunk the script has in hand (it may still replace it).
    case chunk
    /// The last chunk or the trailers, after the script saw the end of the body.
    case other
}

/// One direction's script run (envoy_on_request or envoy_on_response) on one stream.
package struct LuaRun {
    package var thread: OpaquePointer?
    package var threadRef: Int32 = 0
    package var slot: UInt32 = 0
    package var gen: UInt64 = 0
    /// The coroutine exists: started and not yet over.
    package var active = false
    package var wait = LuaWait.none
    /// We hold the headers (`.stopIteration`) and will release them with our copy.
    package var holding = false
    /// The headers went on to the next filter: read-only from now on.
    package var headersPassed = false
    package var trailersPassed = false
    /// Header maps being iterated by pairs(): bit 0 headers, bit 1 trailers.
    package var iterating: UInt8 = 0
    /// No more body will arrive.
    package var endSeen = false
    /// The end came with a buffered body, which the engine also delivers when trailers follow.
    package var endAmbiguous = false
    package var trailersSeen = false
    /// `body(true)`: an empty buffer rather than nil when there is no body.
    package var wrapBody = false
    /// The whole body, while the script may still read it.
    package var body: ByteBuffer?
    /// The body went on (or streamed past): body() and setBytes are no longer possible.
    package var bodyPassed = false
    /// The whole body waits behind the headers we hold: it goes on, as the script left it,
    /// when they are released.
    package var bodyHeld = false
    /// `body(true)` made an empty body for a message that had none: it goes on only if the
    /// script filled it.
    package var bodyMade = false
    package var held = LuaHeldEvent.none
    /// The synchronous httpCall the script waits on.
    package var call: LuaHTTPCall?
    package var streaming = false
    package var chunk = ByteBuffer()
    package var chunkSerial: UInt64 = 0
    package var reply: (status: Int, headers: HTTPHeaders, body: String)?
    package var ns: UInt64 = 0
}

/// How a step of a run ended, for the filter callback to act on.
package enum LuaStep {
    case done
    case waiting(LuaWait)
    case replied(status: Int, headers: HTTPHeaders, body: String)
    /// `overLimit`: a limit (instructions, time) ended the run rather than a script error.
    case failed(String, overLimit: Bool)
}
