import NIOCore
import NIOHTTP1

/// Why a message was refused; the status a server answers it with.
package enum HTTP1ParseError: Error, Equatable {
    /// Malformed syntax or ambiguous framing (400).
    case badRequest(String)
    /// The head (or the trailers) exceeds the configured size (431).
    case headTooLarge

    package var status: Int {
        switch self {
        case .badRequest: return 400
        case .headTooLarge: return 431
        }
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
package enum HTTP1BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
    /// A response without a length: the body ends when the connection does.
    case untilClose
}

/// A parsed request head, with the facts the connection needs read off during the parse
/// so nothing scans the headers again. `headers` holds every field but Host.
package struct HTTP1RequestHeadFields {
    package var method: String
    package var target: String
    /// 0 or 1: HTTP/1.0 or HTTP/1.1.
    package var minorVersion: Int
    package var headers: HTTPHeaders
    /// The first Host value, and how many Host fields there were.
    package var host: String?
    package var hostCount: Int
    package var framing: HTTP1BodyFraming
    /// The connection may carry another request after this one (RFC 9112 §9.3).
    package var keepAlive: Bool
    /// `Upgrade` with `Connection: upgrade` (RFC 9110 §7.8).
    package var upgrade: Bool
}

/// A parsed response head and its framing facts; the framing itself depends on the request
/// (`HTTP1ResponseDecoder`).
package struct HTTP1ResponseHeadFields {
    package var status: Int
    package var reason: String
    package var minorVersion: Int
    package var headers: HTTPHeaders
    package var contentLength: Int?
    /// Transfer-Encoding was present; `chunkedLast`: its last coding is chunked.
    package var hasTransferEncoding: Bool
    package var chunkedLast: Bool
    package var keepAlive: Bool
}

/// Parses a complete HTTP/1.x head (request line or status line, then fields, then the
/// empty line) by RFC 9112, as strictly as llhttp does: no obs-fold, no whitespace before
/// the colon, no bare CR or LF, no control bytes in values, one Content-Length and never
/// with Transfer-Encoding, chunked last in a request's Transfer-Encoding.
package enum HTTP1HeadParser {
    /// `head` is the block up to and including its empty line (`HTTP1Syntax.findBlockEnd`).
    package static func parseRequest(_ head: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> HTTP1RequestHeadFields {
        guard let lineEnd = HTTP1Syntax.indexOfLF(head, from: 0) else { throw .badRequest("no request line") }
        let line = UnsafeRawBufferPointer(rebasing: head[0..<(lineEnd - 1)])
        // request-line = method SP request-target SP HTTP-version
        var i = 0
        while i < line.count, HTTP1Syntax.isTokenByte(line[i]) { i += 1 }
        guard i > 0, i < line.count, line[i] == HTTP1Syntax.sp else { throw .badRequest("bad method") }
        let methodEnd = i
        i += 1
        let targetStart = i
        while i < line.count, HTTP1Syntax.isTargetByte(line[i]) { i += 1 }
        guard i > targetStart, i < line.count, line[i] == HTTP1Syntax.sp else { throw .badRequest("bad request target") }
        let targetEnd = i
        guard let minor = version(UnsafeRawBufferPointer(rebasing: line[(i + 1)...])) else {
            throw .badRequest("bad HTTP version")
        }
        var fields = Fields()
        try fields.parse(head, from: lineEnd + 1)
        if fields.transferEncoding != .absent {
            guard fields.contentLength == nil else { throw .badRequest("content-length with transfer-encoding") }
            // A request whose last coding is not chunked has no knowable length (RFC 9112 §6.3).
            guard fields.transferEncoding == .chunkedLast else { throw .badRequest("transfer-encoding not chunked") }
        }
        let framing: HTTP1BodyFraming
        if fields.transferEncoding == .chunkedLast { framing = .chunked }
        else if let n = fields.contentLength, n > 0 { framing = .length(n) }
        else { framing = .none }
        return HTTP1RequestHeadFields(
            method: String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<methodEnd]), as: UTF8.self),
            target: String(decoding: UnsafeRawBufferPointer(rebasing: line[targetStart..<targetEnd]), as: UTF8.self),
            minorVersion: minor, headers: fields.headers, host: fields.host, hostCount: fields.hostCount,
            framing: framing, keepAlive: fields.connection.keepAlive(minorVersion: minor),
            upgrade: fields.hasUpgrade && fields.connection.upgrade)
    }

    /// status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]; a missing SP before an
    /// empty phrase is tolerated, as llhttp does.
    package static func parseResponse(_ head: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> HTTP1ResponseHeadFields {
        guard let lineEnd = HTTP1Syntax.indexOfLF(head, from: 0) else { throw .badRequest("no status line") }
        let line = UnsafeRawBufferPointer(rebasing: head[0..<(lineEnd - 1)])
        guard line.count >= 12, let minor = version(UnsafeRawBufferPointer(rebasing: line[0..<8])),
              line[8] == HTTP1Syntax.sp else { throw .badRequest("bad status line") }
        var status = 0
        for i in 9..<12 {
            guard line[i] >= UInt8(ascii: "0"), line[i] <= UInt8(ascii: "9") else { throw .badRequest("bad status code") }
            status = status * 10 + Int(line[i] - UInt8(ascii: "0"))
        }
        guard status >= 100 else { throw .badRequest("bad status code") }
        var reason = ""
        if line.count > 12 {
            guard line[12] == HTTP1Syntax.sp else { throw .badRequest("bad status line") }
            let phrase = UnsafeRawBufferPointer(rebasing: line[13...])
            for byte in phrase where !HTTP1Syntax.isFieldValueByte(byte) { throw .badRequest("bad reason phrase") }
            reason = String(decoding: phrase, as: UTF8.self)
        }
        var fields = Fields()
        fields.extractsHost = false
        try fields.parse(head, from: lineEnd + 1)
        return HTTP1ResponseHeadFields(status: status, reason: reason, minorVersion: minor, headers: fields.headers,
                                       contentLength: fields.contentLength,
                                       hasTransferEncoding: fields.transferEncoding != .absent,
                                       chunkedLast: fields.transferEncoding == .chunkedLast,
                                       keepAlive: fields.connection.keepAlive(minorVersion: minor))
    }

    /// Trailer fields of a chunked body: field lines only, no framing meaning.
    package static func parseTrailers(_ block: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> HTTPHeaders {
        var fields = Fields()
        fields.isTrailers = true
        try fields.parse(block, from: 0)
        return fields.headers
    }

    /// "HTTP/1.0" or "HTTP/1.1": the minor version.
    static func version(_ v: UnsafeRawBufferPointer) -> Int? {
        guard v.count == 8, v[0] == UInt8(ascii: "H"), v[1] == UInt8(ascii: "T"), v[2] == UInt8(ascii: "T"),
              v[3] == UInt8(ascii: "P"), v[4] == UInt8(ascii: "/"), v[5] == UInt8(ascii: "1"),
              v[6] == UInt8(ascii: ".") else { return nil }
        switch v[7] {
        case UInt8(ascii: "0"): return 0
        case UInt8(ascii: "1"): return 1
        default: return nil
        }
    }

    /// Connection options (RFC 9112 §9.6), as NIO's `isKeepAlive` reads them: any `close` wins.
    struct ConnectionOptions {
        var close = false
        var keepAliveToken = false
        var upgrade = false

        func keepAlive(minorVersion: Int) -> Bool {
            if close { return false }
            return keepAliveToken || minorVersion >= 1
        }
    }

    enum TransferEncoding { case absent, chunkedLast, other }

    /// The field lines of a head, collected into `HTTPHeaders` with their framing facts.
    struct Fields {
        /// Collected as pairs and wrapped once: `HTTPHeaders.add` checks each name for ASCII and
        /// for `connection` again, which the parser has already done (names are tchar).
        private var pairs: [(String, String)] = []
        var headers: HTTPHeaders { HTTPHeaders(pairs) }
        /// Trailers: no field has framing meaning, and Host stays a field.
        var isTrailers = false
        /// Requests: Host becomes `host`, not a field.
        var extractsHost = true
        var host: String?
        var hostCount = 0
        var contentLength: Int?
        var transferEncoding = TransferEncoding.absent
        var connection = ConnectionOptions()
        var hasUpgrade = false

        mutating func parse(_ p: UnsafeRawBufferPointer, from: Int) throws(HTTP1ParseError) {
            var start = from
            while true {
                // Every LF in a block is preceded by CR (findBlockEnd checked): lines end at CRLF.
                guard let lf = HTTP1Syntax.indexOfLF(p, from: start) else { throw .badRequest("unterminated field line") }
                let end = lf - 1
                if end == start { return }  // the empty line
                try field(UnsafeRawBufferPointer(rebasing: p[start..<end]))
                start = lf + 1
            }
        }

        private mutating func field(_ line: UnsafeRawBufferPointer) throws(HTTP1ParseError) {
            // A line that starts with whitespace continues the previous one: obs-fold, refused (RFC 9112 §5.2).
            var i = 0
            while i < line.count, HTTP1Syntax.isTokenByte(line[i]) { i += 1 }
            guard i > 0, i < line.count, line[i] == HTTP1Syntax.colon else { throw .badRequest("bad field name") }
            let name = UnsafeRawBufferPointer(rebasing: line[0..<i])
            var a = i + 1, b = line.count
            while a < b, HTTP1Syntax.isWhitespace(line[a]) { a += 1 }
            while b > a, HTTP1Syntax.isWhitespace(line[b - 1]) { b -= 1 }
            let value = UnsafeRawBufferPointer(rebasing: line[a..<b])
            for byte in value where !HTTP1Syntax.isFieldValueByte(byte) { throw .badRequest("bad field value") }
            if isTrailers {
                pairs.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
                return
            }
            try note(name, value)
            if extractsHost, name.count == 4, HTTP1Syntax.equalsLowercased(name, "host") {
                hostCount += 1
                if host == nil { host = String(decoding: value, as: UTF8.self) }
                return
            }
            pairs.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }

        /// The fields that frame the message or decide the connection's fate.
        private mutating func note(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(HTTP1ParseError) {
            switch name.count {
            case 14 where HTTP1Syntax.equalsLowercased(name, "content-length"):
                guard contentLength == nil else { throw .badRequest("more than one content-length") }
                guard let n = Self.decimal(value) else { throw .badRequest("bad content-length") }
                contentLength = n
            case 17 where HTTP1Syntax.equalsLowercased(name, "transfer-encoding"):
                var last: UnsafeRawBufferPointer?
                HTTP1Syntax.forEachListElement(value) { last = $0 }
                guard let last else { throw .badRequest("empty transfer-encoding") }
                // Chunked anywhere but last (including a later field after a chunked one) is not a framing we read.
                transferEncoding = HTTP1Syntax.equalsLowercased(last, "chunked") && transferEncoding != .chunkedLast
                    ? .chunkedLast : .other
            case 10 where HTTP1Syntax.equalsLowercased(name, "connection"):
                HTTP1Syntax.forEachListElement(value) { option in
                    if HTTP1Syntax.equalsLowercased(option, "close") { connection.close = true }
                    else if HTTP1Syntax.equalsLowercased(option, "keep-alive") { connection.keepAliveToken = true }
                    else if HTTP1Syntax.equalsLowercased(option, "upgrade") { connection.upgrade = true }
                }
            case 7 where HTTP1Syntax.equalsLowercased(name, "upgrade"):
                hasUpgrade = true
            default:
                break
            }
        }

        /// 1*DIGIT, at most 18 of them (no overflow).
        static func decimal(_ v: UnsafeRawBufferPointer) -> Int? {
            guard !v.isEmpty, v.count <= 18 else { return nil }
            var n = 0
            for b in v {
                guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
                n = n * 10 + Int(b - UInt8(ascii: "0"))
            }
            return n
        }
    }
}
