import CNghttp2
import MeshAPI

/// nghttp2's C enums as plain integers of the types its functions take,
/// computed once so call sites stay free of raw-value conversions.
package enum H2 {
    // Frame types (nghttp2_frame_hd.type is uint8_t).
    package static let data = UInt8(NGHTTP2_DATA.rawValue)
    package static let headers = UInt8(NGHTTP2_HEADERS.rawValue)
    package static let rstStream = UInt8(NGHTTP2_RST_STREAM.rawValue)
    package static let settings = UInt8(NGHTTP2_SETTINGS.rawValue)
    package static let ping = UInt8(NGHTTP2_PING.rawValue)
    package static let goaway = UInt8(NGHTTP2_GOAWAY.rawValue)
    package static let priority = UInt8(NGHTTP2_PRIORITY.rawValue)
    package static let windowUpdate = UInt8(NGHTTP2_WINDOW_UPDATE.rawValue)
    package static let continuation = UInt8(NGHTTP2_CONTINUATION.rawValue)

    // Frame flags.
    package static let flagNone = UInt8(NGHTTP2_FLAG_NONE.rawValue)
    package static let flagEndStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
    package static let flagAck = UInt8(NGHTTP2_FLAG_ACK.rawValue)
    package static let flagEndHeaders = UInt8(NGHTTP2_FLAG_END_HEADERS.rawValue)

    // Data provider flags.
    package static let dataEOF = UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
    package static let dataNoEndStream = UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
    package static let dataNoCopy = UInt32(NGHTTP2_DATA_FLAG_NO_COPY.rawValue)

    // Library return codes.
    package static let errDeferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
    package static let errPause = Int32(NGHTTP2_ERR_PAUSE.rawValue)
    package static let errCallbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
    package static let errTemporalCallbackFailure = Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)

    // Error codes carried by RST_STREAM / GOAWAY.
    package static let noError = UInt32(NGHTTP2_NO_ERROR.rawValue)
    package static let protocolError = UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue)
    package static let internalError = UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)
    package static let refusedStream = UInt32(NGHTTP2_REFUSED_STREAM.rawValue)
    package static let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
    package static let enhanceYourCalm = UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)

    // Header categories.
    package static let hcatRequest = NGHTTP2_HCAT_REQUEST
    package static let hcatResponse = NGHTTP2_HCAT_RESPONSE

    // SETTINGS identifiers (nghttp2_settings_entry.settings_id is int32_t).
    package static let settingsMaxConcurrentStreams = Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue)
    package static let settingsInitialWindowSize = Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue)
    package static let settingsMaxHeaderListSize = Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue)
    package static let settingsEnablePush = Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue)

    /// Pseudo code passed to `streamClosed` when the whole connection went away.
    package static let connectionLost = UInt32.max

    /// A flow-control window clamped to HTTP/2's maximum (2^31 - 1).
    package static func window(_ size: Int) -> Int32 {
        Int32(clamping: max(size, 0))
    }

    /// Readable name for an RST_STREAM/GOAWAY error code (for failure messages).
    package static func errorName(_ code: UInt32) -> String {
        if code == connectionLost { return "connection closed" }
        guard let cString = nghttp2_http2_strerror(code) else { return "error \(code)" }
        return String(cString: cString)
    }
}
