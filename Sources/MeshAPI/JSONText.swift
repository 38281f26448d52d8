/// JSON text for untyped trees (`[String: Any]`, `[Any]`, `String`, `Int`, `Double`, `Bool`,
/// `JSONText.null`), as the admin pages and the CLI build and read them, without Foundation's
/// JSONSerialization. Keys are written sorted, `/` unescaped.
public enum JSONText {
    /// JSON's `null` in a parsed tree.
    public struct Null: Sendable, Hashable {}
    public static let null = Null()

    public struct SyntaxError: Error, CustomStringConvertible {
        public var offset: Int
        public var description: String { "invalid JSON at byte \(offset)" }
    }

    /// `value` as JSON text; `pretty`: one member per line, indented by two spaces (`"key" : value`).
    public static func render(_ value: Any, pretty: Bool = false) -> String {
        var out = ""
        write(value, into: &out, pretty: pretty, indent: 0)
        return out
    }

    /// A JSON string literal: `"`, `\` and control characters escaped.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.utf8.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// The byte a one-letter escape (`\n`, `\"`, `\/`, …) stands for; nil for `u` (four hex
    /// digits follow) and for anything JSON does not allow after a backslash.
    public static func unescaped(_ letter: UInt8) -> UInt8? {
        switch letter {
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "t"): 0x09
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): letter
        default: nil
        }
    }

    private static func write(_ value: Any, into out: inout String, pretty: Bool, indent: Int) {
        let newline = pretty ? "\n" + String(repeating: " ", count: indent + 2) : ""
        let close = pretty ? "\n" + String(repeating: " ", count: indent) : ""
        switch value {
        case let s as String: out += quoted(s)
        case let b as Bool: out += b ? "true" : "false"
        case let i as Int: out += String(i)
        case let i as Int64: out += String(i)
        case let i as UInt64: out += String(i)
        case let d as Double: out += number(d)
        case let o as [String: Any]:
            guard !o.isEmpty else { out += "{}"; return }
            out += "{"
            for (n, key) in o.keys.sorted().enumerated() {
                out += (n > 0 ? "," : "") + newline + quoted(key) + (pretty ? " : " : ":")
                write(o[key]!, into: &out, pretty: pretty, indent: indent + 2)
            }
            out += close + "}"
        case let a as [Any]:
            guard !a.isEmpty else { out += "[]"; return }
            out += "["
            for (n, item) in a.enumerated() {
                out += (n > 0 ? "," : "") + newline
                write(item, into: &out, pretty: pretty, indent: indent + 2)
            }
            out += close + "]"
        case let v as JSONValue: write(v.untyped, into: &out, pretty: pretty, indent: indent)
        default: out += value is Null ? "null" : quoted("\(value)")
        }
    }

    /// An integral double without a fraction (`3`, not `3.0`), as JSON writers print it.
    private static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
        return String(d)
    }

    /// Parses JSON text into the untyped tree: objects `[String: Any]`, arrays `[Any]`, numbers
    /// `Int` when integral and in range else `Double`, `null` as `JSONText.null`.
    public static func parse<Bytes: Collection<UInt8>>(_ text: Bytes) throws(SyntaxError) -> Any {
        var p = Reader(bytes: Array(text))
        p.skipSpace()
        let value = try p.value(depth: 0)
        p.skipSpace()
        guard p.at == p.bytes.count else { throw SyntaxError(offset: p.at) }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[at]) { at += 1 }
        }

        func fail() -> SyntaxError { SyntaxError(offset: at) }

        mutating func literal(_ word: String) throws(SyntaxError) {
            for b in word.utf8 {
                guard at < bytes.count, bytes[at] == b else { throw fail() }
                at += 1
            }
        }

        mutating func value(depth: Int) throws(SyntaxError) -> Any {
            guard depth < 512, at < bytes.count else { throw fail() }
            switch bytes[at] {
            case UInt8(ascii: "{"):
                at += 1
                var o: [String: Any] = [:]
                skipSpace()
                if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return o }
                while true {
                    skipSpace()
                    let key = try string()
                    skipSpace()
                    try literal(":")
                    skipSpace()
                    o[key] = try value(depth: depth + 1)
                    skipSpace()
                    guard at < bytes.count else { throw fail() }
                    at += 1
                    if bytes[at - 1] == UInt8(ascii: "}") { return o }
                    guard bytes[at - 1] == UInt8(ascii: ",") else { throw fail() }
                }
            case UInt8(ascii: "["):
                at += 1
                var a: [Any] = []
                skipSpace()
                if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return a }
                while true {
                    skipSpace()
                    a.append(try value(depth: depth + 1))
                    skipSpace()
                    guard at < bytes.count else { throw fail() }
                    at += 1
                    if bytes[at - 1] == UInt8(ascii: "]") { return a }
                    guard bytes[at - 1] == UInt8(ascii: ",") else { throw fail() }
                }
            case UInt8(ascii: "\""): return try string()
            case UInt8(ascii: "t"): try literal("true"); return true
            case UInt8(ascii: "f"): try literal("false"); return false
            case UInt8(ascii: "n"): try literal("null"); return JSONText.null
            default: return try number()
            }
        }

        mutating func number() throws(SyntaxError) -> Any {
            let start = at
            while at < bytes.count, "+-0123456789.eE".utf8.contains(bytes[at]) { at += 1 }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            if let i = Int(text) { return i }
            guard !text.isEmpty, let d = Double(text) else { throw SyntaxError(offset: start) }
            return d
        }

        mutating func string() throws(SyntaxError) -> String {
            guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail() }
            at += 1
            var out: [UInt8] = []
            while at < bytes.count {
                let b = bytes[at]
                at += 1
                if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                guard b == UInt8(ascii: "\\") else { out.append(b); continue }
                guard at < bytes.count else { throw fail() }
                let e = bytes[at]
                at += 1
                switch e {
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), at + 1 < bytes.count,
                       bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") {
                        at += 2
                        let low = try hex4()
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    out.append(contentsOf: String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8)
                default:
                    guard let byte = JSONText.unescaped(e) else { throw SyntaxError(offset: at - 1) }
                    out.append(byte)
                }
            }
            throw fail()
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard at + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16) else {
                throw fail()
            }
            at += 4
            return v
        }
    }
}

extension JSONValue {
    /// The same value as `JSONText`'s untyped tree.
    public var untyped: Any {
        switch self {
        case .null: return JSONText.null
        case .bool(let b): return b
        case .number(let n): return n
        case .string(let s): return s
        case .array(let a): return a.map(\.untyped)
        case .object(let o): return o.mapValues(\.untyped)
        }
    }
}
