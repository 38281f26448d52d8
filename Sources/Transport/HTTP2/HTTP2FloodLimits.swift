import CNghttp2
import MeshAPI

/// Envoy's inbound flood limits (`Http2ProtocolOptions`, same names and defaults): frames
/// that cost the server work and give the peer nothing are counted per connection, and a
/// connection past a limit gets GOAWAY(ENHANCE_YOUR_CALM).
public struct HTTP2FrameLimits: Sendable {
    /// PRIORITY frames allowed per stream the client opened, plus one stream's worth.
    public var maxInboundPriorityFramesPerStream = 100
    /// DATA, HEADERS or CONTINUATION frames in a row with no payload and no END_STREAM.
    public var maxConsecutiveInboundFramesWithEmptyPayload = 1
    /// WINDOW_UPDATE frames allowed per DATA frame we sent (plus 2 per stream and 1).
    public var maxInboundWindowUpdateFramesPerDataFrameSent = 10

    public init() {}
}

/// Counts one connection's inbound frames against `HTTP2FrameLimits`, as Envoy's
/// ProtocolConstraints does. Padding is left out of "empty": a frame of padding alone is empty.
package struct HTTP2FloodCounter {
    package enum Violation: String {
        case emptyFrames = "too many consecutive frames with an empty payload"
        case priorityFrames = "too many PRIORITY frames"
        case windowUpdateFrames = "too many WINDOW_UPDATE frames"

        /// Envoy's name for the counter of this violation (`http2.<name>`).
        package var statName: String {
            switch self {
            case .emptyFrames: return "inbound_empty_frames_flood"
            case .priorityFrames: return "inbound_priority_frames_flood"
            case .windowUpdateFrames: return "inbound_window_update_frames_flood"
            }
        }
    }

    private let limits: HTTP2FrameLimits
    private var openedStreams = 0
    private var consecutiveEmpty = 0
    private var priorityFrames = 0
    private var windowUpdateFrames = 0
    private var dataFramesSent = 0

    package init(limits: HTTP2FrameLimits) {
        self.limits = limits
    }

    /// A frame arrived: `payload` excludes padding; `endStream`/`endHeaders` are its flags.
    package mutating func received(type: UInt8, payload: Int, endStream: Bool, endHeaders: Bool) -> Violation? {
        switch type {
        case H2.headers, H2.continuation, H2.data:
            if type != H2.data, endHeaders { openedStreams += 1 }
            consecutiveEmpty = payload == 0 && !endStream ? consecutiveEmpty + 1 : 0
        case H2.priority:
            priorityFrames += 1
        case H2.windowUpdate:
            windowUpdateFrames += 1
        default:
            break
        }
        return check()
    }

    package mutating func dataFrameSent() {
        dataFramesSent += 1
    }

    private func check() -> Violation? {
        if consecutiveEmpty > limits.maxConsecutiveInboundFramesWithEmptyPayload { return .emptyFrames }
        if priorityFrames > limits.maxInboundPriorityFramesPerStream * (1 + openedStreams) { return .priorityFrames }
        if windowUpdateFrames > 1 + 2 * (openedStreams + limits.maxInboundWindowUpdateFramesPerDataFrameSent * dataFramesSent) {
            return .windowUpdateFrames
        }
        return nil
    }
}
