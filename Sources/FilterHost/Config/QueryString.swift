import Transport

/// A request's query string, split into percent-decoded name/value pairs for route matching.
struct QueryString {
    private let pairs: [(String, String)]

    init<S: StringProtocol>(_ query: S) {
        pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Self.decode(kv[0]), kv.count > 1 ? Self.decode(kv[1]) : "")
        }
    }

    /// Every name/value pair, in order.
    var all: [(name: String, value: String)] { pairs.map { (name: $0.0, value: $0.1) } }

    /// The first value of `name`, or nil when the parameter is absent.
    func first(_ name: String) -> String? {
        pairs.first { $0.0 == name }?.1
    }

    /// Percent-decoding; an invalid escape is kept as written.
    static func decode<S: StringProtocol>(_ s: S) -> String {
        guard s.contains("%") else { return String(s) }
        var bytes: [UInt8] = []
        let utf8 = Array(s.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count, let h = hex(utf8[i + 1]), let l = hex(utf8[i + 2]) {
                bytes.append(h << 4 | l)
                i += 3
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
