/// A node's YAML tag (`tag:yaml.org,2002:int`, or a local `!custom` as written).
public struct Tag: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let str = Tag(rawValue: "tag:yaml.org,2002:str")
    public static let int = Tag(rawValue: "tag:yaml.org,2002:int")
    public static let float = Tag(rawValue: "tag:yaml.org,2002:float")
    public static let bool = Tag(rawValue: "tag:yaml.org,2002:bool")
    public static let null = Tag(rawValue: "tag:yaml.org,2002:null")
    public static let timestamp = Tag(rawValue: "tag:yaml.org,2002:timestamp")
    public static let merge = Tag(rawValue: "tag:yaml.org,2002:merge")
    public static let value = Tag(rawValue: "tag:yaml.org,2002:value")
    public static let map = Tag(rawValue: "tag:yaml.org,2002:map")
    public static let seq = Tag(rawValue: "tag:yaml.org,2002:seq")

    /// The type of an untagged plain scalar, by YAML 1.1's implicit rules, first match wins:
    /// bool, int, float, merge, null, timestamp, value, else str.
    public static func resolve(plain text: String) -> Tag {
        let b = Array(text.utf8)
        if ScalarText.bool(text) != nil { return .bool }
        if ScalarText.isInt(b) { return .int }
        if ScalarText.isFloat(b) { return .float }
        if text == "<<" { return .merge }
        if ScalarText.isNull(text) { return .null }
        if ScalarText.isTimestamp(b) { return .timestamp }
        if text == "=" { return .value }
        return .str
    }
}

/// YAML 1.1's scalar forms, matched by hand over UTF-8 bytes.
enum ScalarText {
    static func bool(_ text: String) -> Bool? {
        switch text {
        case "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON": return true
        case "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF": return false
        default: return nil
        }
    }

    static func isNull(_ text: String) -> Bool {
        ["", "~", "null", "Null", "NULL"].contains(text)
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    private static func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x66) }

    /// `[-+]?0b[01_]+ | [-+]?0o?[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+ | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`
    static func isInt(_ b: [UInt8]) -> Bool {
        var s = b[...]
        if let f = s.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { s = s.dropFirst() }
        guard let first = s.first else { return false }
        func all(_ rest: ArraySlice<UInt8>, _ ok: (UInt8) -> Bool) -> Bool {
            !rest.isEmpty && rest.allSatisfy { ok($0) || $0 == UInt8(ascii: "_") }
        }
        if first == UInt8(ascii: "0") {
            if s.count == 1 { return true }
            let second = s[s.startIndex + 1]
            if second == UInt8(ascii: "b") { return all(s.dropFirst(2)) { $0 == 0x30 || $0 == 0x31 } }
            if second == UInt8(ascii: "x") { return all(s.dropFirst(2), isHex) }
            if second == UInt8(ascii: "o") { return all(s.dropFirst(2)) { $0 >= 0x30 && $0 <= 0x37 } }
            return all(s.dropFirst(1)) { $0 >= 0x30 && $0 <= 0x37 }
        }
        guard first >= 0x31 && first <= 0x39 else { return false }
        if all(s, isDigit) { return true }
        return isSexagesimal(s, fraction: false)
    }

    /// `[1-9][0-9_]*(:[0-5]?[0-9])+`, with `fraction`: `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`.
    private static func isSexagesimal(_ s: ArraySlice<UInt8>, fraction: Bool) -> Bool {
        var parts = s.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return false }
        if fraction {
            let last = parts.removeLast()
            guard let dot = last.firstIndex(of: UInt8(ascii: ".")),
                  last[dot...].dropFirst().allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "_") }) else { return false }
            parts.append(last[..<dot])
        }
        let head = parts[0]
        guard let h = head.first, isDigit(h), head.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "_") }) else { return false }
        return parts.dropFirst().allSatisfy { p in
            (p.count == 1 && isDigit(p.first!)) || (p.count == 2 && p.first! >= 0x30 && p.first! <= 0x35 && isDigit(p.last!))
        }
    }

    /// `[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)? |
    /// [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`
    static func isFloat(_ b: [UInt8]) -> Bool {
        let text = String(decoding: b, as: UTF8.self)
        if [".nan", ".NaN", ".NAN"].contains(text) { return true }
        var s = b[...]
        let signed = s.first == UInt8(ascii: "-") || s.first == UInt8(ascii: "+")
        if signed { s = s.dropFirst() }
        if [".inf", ".Inf", ".INF"].contains(String(decoding: s, as: UTF8.self)) { return true }
        guard let first = s.first else { return false }
        func digitsOrUnderscore(_ x: ArraySlice<UInt8>) -> Bool { x.allSatisfy { isDigit($0) || $0 == UInt8(ascii: "_") } }
        if first == UInt8(ascii: ".") {
            // `\.[0-9_]+([eE][-+][0-9]+)?`, unsigned only.
            guard !signed else { return false }
            let rest = s.dropFirst()
            let e = rest.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
            let mantissa = rest[..<(e ?? rest.endIndex)]
            guard !mantissa.isEmpty, digitsOrUnderscore(mantissa) else { return false }
            guard let e else { return true }
            let exp = rest[(e + 1)...]
            guard let sign = exp.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") else { return false }
            return exp.count > 1 && exp.dropFirst().allSatisfy(isDigit)
        }
        guard isDigit(first) else { return false }
        if s.contains(UInt8(ascii: ":")) { return isSexagesimal(s, fraction: true) }
        var i = s.startIndex
        while i < s.endIndex, isDigit(s[i]) || s[i] == UInt8(ascii: "_") { i += 1 }
        if i < s.endIndex, s[i] == UInt8(ascii: ".") {
            i += 1
            while i < s.endIndex, isDigit(s[i]) || s[i] == UInt8(ascii: "_") { i += 1 }
        }
        if i < s.endIndex, s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E") {
            i += 1
            if i < s.endIndex, s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") { i += 1 }
            let digits = i
            while i < s.endIndex, isDigit(s[i]) { i += 1 }
            guard i > digits else { return false }
        }
        return i == s.endIndex
    }

    /// `YYYY-MM-DD`, or `YYYY-M-D` with a time (`T` or blanks), optional fraction and zone.
    static func isTimestamp(_ b: [UInt8]) -> Bool {
        func digits(_ at: inout Int, _ min: Int, _ max: Int) -> Bool {
            var n = 0
            while at < b.count, n < max, isDigit(b[at]) { at += 1; n += 1 }
            return n >= min
        }
        func char(_ at: inout Int, _ c: Character) -> Bool {
            guard at < b.count, b[at] == c.asciiValue! else { return false }
            at += 1
            return true
        }
        var i = 0
        guard digits(&i, 4, 4), char(&i, "-") else { return false }
        let dateOnlyStart = i
        var j = dateOnlyStart
        if digits(&j, 2, 2), char(&j, "-"), digits(&j, 2, 2), j == b.count { return true }
        guard digits(&i, 1, 2), char(&i, "-"), digits(&i, 1, 2) else { return false }
        if i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") {
            i += 1
        } else {
            let start = i
            while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
            guard i > start else { return false }
        }
        guard digits(&i, 1, 2), char(&i, ":"), digits(&i, 2, 2), char(&i, ":"), digits(&i, 2, 2) else { return false }
        if char(&i, ".") { _ = digits(&i, 0, Int.max) }
        while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
        if i == b.count { return true }
        if char(&i, "Z") { return i == b.count }
        guard i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") else { return false }
        i += 1
        guard digits(&i, 1, 2) else { return false }
        if char(&i, ":") { guard digits(&i, 2, 2) else { return false } }
        return i == b.count
    }

    /// An integer in any YAML 1.1 form; nil when it is not one or does not fit.
    static func int(_ text: String) -> Int? {
        let plain = text.filter { $0 != "_" }
        if plain == "0" { return 0 }
        let negative = plain.hasPrefix("-")
        var body = Substring(plain)
        if negative || plain.hasPrefix("+") { body = body.dropFirst() }
        let sign = negative ? "-" : ""
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where body.hasPrefix(prefix) {
            return Int(sign + body.dropFirst(prefix.count), radix: radix)
        }
        if body.contains(":") { return sexagesimal(body).flatMap { Int(exactly: negative ? -$0 : $0) } }
        return Int(sign + body)
    }

    static func float(_ text: String) -> Double? {
        switch text.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default: break
        }
        let plain = text.filter { $0 != "_" }
        if plain.contains(":") {
            let negative = plain.hasPrefix("-")
            let body = negative || plain.hasPrefix("+") ? plain.dropFirst() : Substring(plain)
            return sexagesimal(body).map { negative ? -$0 : $0 }
        }
        if let i = int(plain), !plain.contains("."), !plain.lowercased().contains("e") { return Double(i) }
        // Not Swift's own spellings (`nan`, `infinity`, hex floats): YAML's only.
        guard plain.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }) else { return nil }
        return Double(plain)
    }

    /// `1:30` = 90, `1:30.5` = 90.5.
    private static func sexagesimal(_ text: Substring) -> Double? {
        var total = 0.0
        for part in text.split(separator: ":", omittingEmptySubsequences: false) {
            guard let v = Double(part) else { return nil }
            total = total * 60 + v
        }
        return total
    }
}
