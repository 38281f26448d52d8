import NIOCore

/// Counts the gRPC messages in one direction's body as it streams by, chunk by chunk: each
/// message is a 5-byte prefix (flag, 32-bit big-endian length) and that many bytes.
struct GRPCMessageCounter {
    private enum State {
        /// Reading a prefix; `read` of its 5 bytes seen, `length` built so far.
        case prefix(read: Int, length: UInt32)
        case body(remaining: Int)
    }

    private var state = State.prefix(read: 0, length: 0)
    private(set) var messages = 0

    mutating func consume(_ buffer: ByteBuffer) {
        let view = buffer.readableBytesView
        var i = view.startIndex
        while i < view.endIndex {
            switch state {
            case .prefix(let read, let length):
                // Byte 0 is the compression flag; bytes 1...4 the length.
                let length = read == 0 ? 0 : (length << 8) | UInt32(view[i])
                i += 1
                if read + 1 < 5 {
                    state = .prefix(read: read + 1, length: length)
                } else {
                    messages += 1
                    state = length == 0 ? .prefix(read: 0, length: 0) : .body(remaining: Int(length))
                }
            case .body(let remaining):
                let step = min(remaining, view.endIndex - i)
                i += step
                state = remaining == step ? .prefix(read: 0, length: 0) : .body(remaining: remaining - step)
            }
        }
    }
}
