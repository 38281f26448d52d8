import NIOCore

/// Byte classes and small scanners of HTTP/1.x syntax (RFC 9110 §5.6, RFC 9112), shared by
/// the head parser, the body decoder and the response writer.
package enum HTTP1Syntax {
    static let cr: UInt8 = 13
    static let lf: UInt8 = 10
    static let sp: UInt8 = 32
    static let htab: UInt8 = 9
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")

    /// tchar: the characters of a method, a field name or a transfer coding.
    @inline(__always)
    package static func isTokenByte(_ b: UInt8) -> Bool {
        b < 64 ? tokenBitsBelow64 >> b & 1 != 0 : b < 128 && tokenBitsFrom64 >> (b - 64) & 1 != 0
    }

    /// field-vchar, SP, HTAB and obs-text: what a field value may hold between its ends.
    @inline(__always)
    package static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == htab || (b >= 0x20 && b != 0x7F)
    }

    /// A request-target byte: visible ASCII or obs-text; no space, no control.
    @inline(__always)
    static func isTargetByte(_ b: UInt8) -> Bool {
        b > 0x20 && b != 0x7F
    }

    @inline(__always)
    static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }

    /// The tchar set as two 64-bit masks (bit n: byte n, then byte 64 + n): digits and
    /// ``!#$%&'*+-.^_`|~`` below 64, letters and ``^_`|~`` from 64. Integer literals, unlike
    /// a table built at first use, cost no lazy-initialisation check per byte.
    private static let tokenBitsBelow64: UInt64 = 0x03FF_6CFA_0000_0000
    private static let tokenBitsFrom64: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    /// ASCII case-insensitive equality of `bytes` with `lowercase` (which must be lowercase).
    @inline(__always)
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let l = lowercase.utf8Start
        for i in 0..<bytes.count where bytes[i] | 0x20 != l[i] {
            // `| 0x20` folds letters; it also folds some punctuation, which the names compared never hold.
            return false
        }
        return true
    }

    /// The comma-separated elements of a list-valued field (RFC 9110 §5.6.1), without OWS.
    static func forEachListElement(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != comma { end += 1 }
            var a = start, b = end
            while a < b, isWhitespace(value[a]) { a += 1 }
            while b > a, isWhitespace(value[b - 1]) { b -= 1 }
            if a < b { body(UnsafeRawBufferPointer(rebasing: value[a..<b])) }
            start = end + 1
        }
    }

    /// Where a header block ends: the index just past its empty line's LF.
    enum BlockEnd: Equatable {
        case found(Int)
        /// Not yet: everything before `scanned` has been looked at.
        case notYet(scanned: Int)
        /// An LF without its CR.
        case bareLF
    }

    /// Finds the end of a head (or a trailer block): CRLF CRLF, or a CRLF at `start` when
    /// the block is empty. `from` resumes an earlier scan of the same bytes.
    static func findBlockEnd(_ p: UnsafeRawBufferPointer, from: Int) -> BlockEnd {
        var i = from
        while i < p.count {
            guard let lfIndex = indexOfLF(p, from: i) else { return .notYet(scanned: p.count) }
            if lfIndex == 0 || p[lfIndex - 1] != cr { return .bareLF }
            if lfIndex == 1 { return .found(2) }
            if lfIndex >= 3, p[lfIndex - 2] == lf { return .found(lfIndex + 1) }
            i = lfIndex + 1
        }
        return .notYet(scanned: p.count)
    }

    /// A head or a trailer block read off the front of a buffer.
    enum BlockRead<Parsed> {
        case needMoreBytes(scanned: Int)
        case failed(HTTP1ParseError)
        case parsed(Parsed)
    }

    /// Finds the block at the front of `buffer` (resuming at `scanned`), refuses it past
    /// `limit` bytes (431), and consumes and parses it once it is complete.
    static func readBlock<Parsed>(_ buffer: inout ByteBuffer, scanned: Int, limit: Int,
                                  _ parse: (UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Parsed) -> BlockRead<Parsed> {
        switch buffer.withUnsafeReadableBytes({ findBlockEnd($0, from: scanned) }) {
        case .bareLF:
            return .failed(.badRequest("bare LF"))
        case .notYet(let scanned):
            return buffer.readableBytes > limit ? .failed(.headTooLarge) : .needMoreBytes(scanned: scanned)
        case .found(let end):
            if end > limit { return .failed(.headTooLarge) }
            let parsed = buffer.withUnsafeReadableBytes { bytes in
                Result { () throws(HTTP1ParseError) in try parse(UnsafeRawBufferPointer(rebasing: bytes[0..<end])) }
            }
            buffer.moveReaderIndex(forwardBy: end)
            switch parsed {
            case .failure(let e): return .failed(e)
            case .success(let p): return .parsed(p)
            }
        }
    }

    @inline(__always)
    static func indexOfLF(_ p: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < p.count, let base = p.baseAddress else { return nil }
        guard let hit = memchr(base + from, Int32(lf), p.count - from) else { return nil }
        return UnsafeRawPointer(hit) - base
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
