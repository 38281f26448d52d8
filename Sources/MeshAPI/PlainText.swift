#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// What meshd used from Foundation proper (trimmingCharacters, String(format:), an error's
// localizedDescription), without it: the binary links FoundationEssentials only.

extension StringProtocol {
    /// Without the whitespace (spaces, tabs, line breaks) at either end.
    public var trimmed: String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}

extension BinaryInteger {
    /// Decimal digits with leading zeros up to `width` (`String(format: "%04d")`).
    public func zeroPadded(_ width: Int) -> String {
        let digits = String(self.magnitude)
        return (self < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

extension Error {
    /// What went wrong, for a message: a file error as the C library words it ("No such file
    /// or directory"), anything else as it describes itself.
    public var plainDescription: String {
        if let cocoa = self as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        if let posix = self as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = self as? CocoaError, cocoa.code == .fileReadInapplicableStringEncoding {
            return "not UTF-8 text"
        }
        return "\(self)"
    }
}

extension StringProtocol {
    /// `%XX` escapes decoded (Foundation's `removingPercentEncoding`): nil when an escape is
    /// malformed or the bytes are not UTF-8.
    public var percentDecoded: String? {
        var bytes: [UInt8] = []
        var it = utf8.makeIterator()
        while let b = it.next() {
            guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
            guard let h = it.next(), let l = it.next(),
                  let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(v)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
