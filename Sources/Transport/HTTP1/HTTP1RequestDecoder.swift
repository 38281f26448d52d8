import NIOCore
import NIOHTTP1

/// A downstream connection's request stream: heads and bodies, one message after another,
/// read off the front of the connection's bytes. An Upgrade request ends the messages:
/// whatever follows its head belongs to the tunnel, and `next` leaves it in the buffer.
package struct HTTP1RequestDecoder {
    package enum Event {
        /// A head; when its framing is `.none` or it is an Upgrade, no `.end` follows.
        case head(HTTP1RequestHeadFields)
        case body(ByteBuffer)
        /// The request is complete; trailers if its chunked body had any.
        case end(HTTPHeaders?)
        case needMoreBytes
        case failed(HTTP1ParseError)
    }

    private enum State {
        /// Before a request line; `scanned` bytes were already searched for the head's end.
        case head(scanned: Int)
        case body(HTTP1BodyDecoder)
        /// After an Upgrade request: no more HTTP on this connection.
        case upgraded
        case failed(HTTP1ParseError)
    }

    private var state = State.head(scanned: 0)
    private let maxHeadBytes: Int

    /// `maxHeadBytes` bounds a head, request line included (431 beyond), and a trailer block.
    package init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// True between requests: the next byte starts a new one.
    package var isAtMessageStart: Bool {
        if case .head(0) = state { return true }
        return false
    }

    package mutating func next(_ buffer: inout ByteBuffer) -> Event {
        switch state {
        case .failed(let e):
            return .failed(e)
        case .upgraded:
            return .needMoreBytes
        case .body(var body):
            let event = body.next(&buffer)
            // The body's last data leaves it complete; the message ends with its `.end`.
            if case .end = event { state = .head(scanned: 0) } else { state = .body(body) }
            return Event(event)
        case .head(let scanned):
            return nextHead(&buffer, scanned: scanned)
        }
    }

    private mutating func nextHead(_ buffer: inout ByteBuffer, scanned: Int) -> Event {
        if scanned == 0 {
            Self.skipEmptyLines(&buffer)
            // A lone CR may be half of another empty line: wait for its LF.
            if buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == HTTP1Syntax.cr {
                return .needMoreBytes
            }
        }
        switch HTTP1Syntax.readBlock(&buffer, scanned: scanned, limit: maxHeadBytes, HTTP1HeadParser.parseRequest) {
        case .needMoreBytes(let scanned):
            state = .head(scanned: scanned)
            return .needMoreBytes
        case .failed(let e):
            return fail(e)
        case .parsed(let head):
            if head.upgrade { state = .upgraded }
            else if head.framing == .none { state = .head(scanned: 0) }
            else { state = .body(HTTP1BodyDecoder(head.framing, maxTrailerBytes: maxHeadBytes)) }
            return .head(head)
        }
    }

    private mutating func fail(_ e: HTTP1ParseError) -> Event {
        state = .failed(e)
        return .failed(e)
    }

    /// RFC 9112 §2.2: a server ignores empty lines before a request line (a client's stray
    /// CRLF after a body).
    private static func skipEmptyLines(_ buffer: inout ByteBuffer) {
        while buffer.readableBytes >= 2,
              buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == UInt16(HTTP1Syntax.cr) << 8 | UInt16(HTTP1Syntax.lf) {
            buffer.moveReaderIndex(forwardBy: 2)
        }
    }
}

extension HTTP1RequestDecoder.Event {
    init(_ body: HTTP1BodyDecoder.Event) {
        switch body {
        case .data(let d): self = .body(d)
        case .end(let trailers): self = .end(trailers)
        case .needMoreBytes: self = .needMoreBytes
        case .failed(let e): self = .failed(e)
        }
    }
}
