#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (the value is present).
struct StringPattern: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case exact, prefix, suffix, present }

    let kind: Kind
    let text: String
    let ignoreCase: Bool

    init(_ pattern: String, ignoreCase: Bool = false) {
        self.ignoreCase = ignoreCase
        let p = ignoreCase ? pattern.lowercased() : pattern
        if p == "*" {
            (kind, text) = (.present, "")
        } else if p.hasPrefix("*") {
            (kind, text) = (.suffix, String(p.dropFirst()))
        } else if p.hasSuffix("*") {
            (kind, text) = (.prefix, String(p.dropLast()))
        } else {
            (kind, text) = (.exact, p)
        }
    }

    func matches(_ value: String) -> Bool {
        let v = ignoreCase ? value.lowercased() : value
        switch kind {
        case .present: return true
        case .exact: return v == text
        case .prefix: return v.hasPrefix(text)
        case .suffix: return v.hasSuffix(text)
        }
    }
}

/// An address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
struct IPBlock: Sendable, Equatable {
    let bytes: [UInt8]
    let prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.address(String(parts[0])) else { return nil }
        let length: Int
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...(bytes.count * 8)).contains(n) else { return nil }
            length = n
        } else {
            length = bytes.count * 8
        }
        self.bytes = bytes
        self.prefixLength = length
    }

    func contains(_ address: String) -> Bool {
        guard let other = Self.address(address), other.count == bytes.count else { return false }
        var bits = prefixLength
        for i in 0..<bytes.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if bytes[i] & mask != other[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    /// The address's bytes (4 or 16), or nil when it is not an IP address.
    static func address(_ text: String) -> [UInt8]? {
        if text.contains(":") { return ipv6(text) }
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var out: [UInt8] = []
        for o in octets {
            guard !o.isEmpty, o.count <= 3, o.allSatisfy(\.isASCII), let n = UInt8(o) else { return nil }
            out.append(n)
        }
        return out
    }

    private static func ipv6(_ text: String) -> [UInt8]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt8]? {
            guard !s.isEmpty else { return [] }
            var out: [UInt8] = []
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            for (i, p) in parts.enumerated() {
                if i == parts.count - 1, p.contains(".") {
                    guard let v4 = address(String(p)) else { return nil }
                    out += v4
                } else {
                    guard (1...4).contains(p.count), let n = UInt16(p, radix: 16) else { return nil }
                    out += [UInt8(n >> 8), UInt8(n & 0xFF)]
                }
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count < 16 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}
