import NIOCore
import MeshAPI

/// gRPC's length-prefixed message framing (a 1-byte compressed flag, a 4-byte big-endian
/// length, the message). Compressed messages are refused: meshd never negotiates compression.
public struct GRPCFrameDecoder {
    public enum Error: Swift.Error, CustomStringConvertible {
        case compressed
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .compressed: return "compressed gRPC messages are not supported"
            case .tooLarge(let n): return "gRPC message of \(n) bytes exceeds the limit"
            }
        }
    }

    private var buffer = ByteBuffer()
    public let maxMessageBytes: Int

    public init(maxMessageBytes: Int = 64 << 20) {
        self.maxMessageBytes = maxMessageBytes
    }

    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// The next complete message, or nil until more bytes arrive.
    public mutating func next() throws -> ByteBuffer? {
        guard buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self) else { return nil }
        if flag != 0 { throw Error.compressed }
        guard Int(length) <= maxMessageBytes else { throw Error.tooLarge(Int(length)) }
        guard buffer.readableBytes >= 5 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let message = buffer.readSlice(length: Int(length))!
        if buffer.readableBytes == 0 { buffer.clear() } else if buffer.readerIndex > 1 << 20 { buffer.discardReadBytes() }
        return message
    }
}

public enum GRPCFrame {
    public static func frame(_ message: [UInt8]) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(5 + message.count)
        out.writeInteger(UInt8(0))
        out.writeInteger(UInt32(message.count))
        out.writeBytes(message)
        return out
    }
}

/// gRPC status codes meshd uses.
public enum GRPCStatusCode: Int, Sendable {
    case ok = 0, cancelled = 1, unknown = 2, invalidArgument = 3, notFound = 5, permissionDenied = 7, unimplemented = 12,
         internalError = 13, unavailable = 14
}
