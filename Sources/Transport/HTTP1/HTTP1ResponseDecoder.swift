import NIOCore
import NIOHTTP1

/// An upstream connection's responses, one per request: the final head (1xx interim heads
/// are read and dropped, as the HTTP/2 client does; a 101 to an Upgrade ends HTTP), the body
/// framed by RFC 9112 §6.3 for the request it answers, and its end.
package struct HTTP1ResponseDecoder {
    package enum Event {
        /// The final head and how its body is framed (`.none`: no `.end` follows).
        case head(HTTP1ResponseHeadFields, HTTP1BodyFraming)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
        case needMoreBytes
        case failed(HTTP1ParseError)
    }

    private enum State {
        case head(scanned: Int)
        case body(HTTP1BodyDecoder)
        /// After a 101: the bytes belong to the tunnel.
        case upgraded
        case failed(HTTP1ParseError)
    }

    private var state = State.head(scanned: 0)
    private let maxHeadBytes: Int
    private var requestIsHEAD = false
    private var upgradeRequested = false

    package init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// The request the next response answers: a HEAD's has no body; only an Upgrade's 101
    /// switches protocols.
    package mutating func expectResponse(toHEAD: Bool, upgrade: Bool) {
        requestIsHEAD = toHEAD
        upgradeRequested = upgrade
    }

    /// The connection closed: an until-close body ends here; anything else was cut short.
    package mutating func inputEnded() -> Event? {
        switch state {
        case .body(let body) where body.isUntilClose:
            state = .head(scanned: 0)
            return .end(nil)
        default:
            return nil
        }
    }

    package mutating func next(_ buffer: inout ByteBuffer) -> Event {
        while true {
            switch state {
            case .failed(let e):
                return .failed(e)
            case .upgraded:
                return .needMoreBytes
            case .body(var body):
                switch body.next(&buffer) {
                case .data(let d): state = .body(body); return .body(d)
                case .end(let trailers): state = .head(scanned: 0); return .end(trailers)
                case .needMoreBytes: state = .body(body); return .needMoreBytes
                case .failed(let e): return fail(e)
                }
            case .head(let scanned):
                switch HTTP1Syntax.readBlock(&buffer, scanned: scanned, limit: maxHeadBytes, HTTP1HeadParser.parseResponse) {
                case .needMoreBytes(let scanned):
                    state = .head(scanned: scanned)
                    return .needMoreBytes
                case .failed(let e):
                    return fail(e)
                case .parsed(let head):
                    if head.status == 101, upgradeRequested {
                        state = .upgraded
                        return .head(head, .none)
                    }
                    // Interim answers (100 Continue, 103 Early Hints) are not the response.
                    if head.status < 200 {
                        state = .head(scanned: 0)
                        continue
                    }
                    let framing: HTTP1BodyFraming
                    do throws(HTTP1ParseError) { framing = try bodyFraming(head) } catch { return fail(error) }
                    state = framing == .none ? .head(scanned: 0)
                        : .body(HTTP1BodyDecoder(framing, maxTrailerBytes: maxHeadBytes))
                    return .head(head, framing)
                }
            }
        }
    }

    /// RFC 9112 §6.3, in its order.
    private func bodyFraming(_ head: HTTP1ResponseHeadFields) throws(HTTP1ParseError) -> HTTP1BodyFraming {
        if requestIsHEAD || head.status == 204 || head.status == 304 { return .none }
        if head.hasTransferEncoding {
            guard head.contentLength == nil else { throw .badRequest("content-length with transfer-encoding") }
            return head.chunkedLast ? .chunked : .untilClose
        }
        if let n = head.contentLength { return n > 0 ? .length(n) : .none }
        return .untilClose
    }

    private mutating func fail(_ e: HTTP1ParseError) -> Event {
        state = .failed(e)
        return .failed(e)
    }
}
