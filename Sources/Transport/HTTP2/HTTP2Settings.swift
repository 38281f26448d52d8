import NIOCore
import MeshAPI

/// Tunables for an HTTP/2 downstream (server) connection.
public struct HTTP2ServerSettings: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise; nghttp2 refuses streams beyond it.
    public var maxConcurrentStreams: Int
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much request body one stream may have in flight.
    public var initialWindowSize: Int
    /// Connection-level receive window; larger than one stream's so a paused stream
    /// does not starve the others.
    public var connectionWindowSize: Int
    /// SETTINGS_MAX_HEADER_LIST_SIZE; larger request header blocks get a 431.
    public var maxHeaderListSize: Int
    /// "Rapid reset" protection: more client RST_STREAMs than this within
    /// `resetWindow` gets GOAWAY(ENHANCE_YOUR_CALM) and the connection closed.
    public var maxResetsPerWindow: Int
    public var resetWindow: TimeAmount
    /// How long graceful shutdown waits for the PING round trip after the
    /// shutdown notice before sending the final GOAWAY anyway.
    public var shutdownNoticeTimeout: TimeAmount
    /// Inbound flood limits (Envoy's); past one: GOAWAY(ENHANCE_YOUR_CALM).
    public var frameLimits = HTTP2FrameLimits()
    /// A connection without streams for this long gets GOAWAY and is closed (nil: never).
    public var idleTimeout: TimeAmount?
    /// A header block begun (HEADERS without END_HEADERS, CONTINUATIONs missing) must be
    /// complete within this long, or the connection is closed (nil: no limit).
    public var headerBlockTimeout: TimeAmount?
    /// Decoded header bytes per block past which decoding stops and the stream is reset,
    /// as a multiple of `maxHeaderListSize`. Between the list size and this the request
    /// gets a 431; beyond it HPACK references to a large table entry would make the
    /// decoder expand (and validate) far more than the client sent.
    public static let headerBlockHardLimitFactor = 2

    public init(maxConcurrentStreams: Int = 100,
                initialWindowSize: Int = 1 << 20,
                connectionWindowSize: Int = 8 << 20,
                maxHeaderListSize: Int = 60 * 1024,
                maxResetsPerWindow: Int = 200,
                resetWindow: TimeAmount = .seconds(10),
                shutdownNoticeTimeout: TimeAmount = .seconds(5)) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialWindowSize = initialWindowSize
        self.connectionWindowSize = connectionWindowSize
        self.maxHeaderListSize = maxHeaderListSize
        self.maxResetsPerWindow = maxResetsPerWindow
        self.resetWindow = resetWindow
        self.shutdownNoticeTimeout = shutdownNoticeTimeout
    }
}

/// Tunables for an HTTP/2 upstream (client) connection.
public struct HTTP2ClientSettings: Sendable {
    /// Our own cap on concurrent streams; the server's SETTINGS may lower it further.
    public var maxConcurrentStreams: Int
    public var initialWindowSize: Int
    public var connectionWindowSize: Int
    /// Response header blocks larger than this fail the stream.
    public var maxHeaderListSize: Int

    public init(maxConcurrentStreams: Int = 100,
                initialWindowSize: Int = 1 << 20,
                connectionWindowSize: Int = 8 << 20,
                maxHeaderListSize: Int = 60 * 1024) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialWindowSize = initialWindowSize
        self.connectionWindowSize = connectionWindowSize
        self.maxHeaderListSize = maxHeaderListSize
    }
}
