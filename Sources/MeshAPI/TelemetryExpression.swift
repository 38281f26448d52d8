/// The subset of CEL that Istio's Telemetry examples use, for access-log `filter.expression`
/// (a bool) and metric `tagOverrides` values (a string): attributes (`response.code`,
/// `request.headers['x']`, `connection.mtls`, …), literals, comparisons, `&&`, `||`, `!`,
/// parentheses. Anything else is refused when parsed, so the control plane refuses it at
/// its line instead of a proxy failing later.
public indirect enum TelemetryExpression: Sendable, Equatable {
    case attribute(Attribute)
    case literal(Value)
    case compare(Comparison, TelemetryExpression, TelemetryExpression)
    case and(TelemetryExpression, TelemetryExpression)
    case or(TelemetryExpression, TelemetryExpression)
    case not(TelemetryExpression)

    public enum Attribute: Sendable, Equatable {
        case responseCode
        case requestHeader(String)
        case requestMethod, requestPath, requestURLPath, requestHost, requestProtocol, requestID
        case connectionMTLS
        case upstreamCluster

        var type: ValueType {
            switch self {
            case .responseCode: .int
            case .connectionMTLS: .bool
            default: .string
            }
        }

        static let names: [String: Attribute] = [
            "response.code": .responseCode, "request.method": .requestMethod, "request.path": .requestPath,
            "request.url_path": .requestURLPath, "request.host": .requestHost, "request.protocol": .requestProtocol,
            "request.id": .requestID, "connection.mtls": .connectionMTLS, "upstream.cluster": .upstreamCluster,
        ]
    }

    public enum Value: Sendable, Equatable {
        case int(Int)
        case string(String)
        case bool(Bool)
    }

    public enum ValueType: String, Sendable { case int, string, bool }

    public enum Comparison: String, Sendable {
        case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// Parses `text` and checks that it gives a value of `type`.
    public init(parsing text: String, as type: ValueType) throws {
        var p = ExpressionParser(Array(text.unicodeScalars))
        let e = try p.or()
        p.skipSpace()
        guard p.atEnd else { throw ParseError(reason: "unexpected \"\(p.rest)\" in expression \"\(text)\"") }
        let got = try e.type()
        guard got == type else { throw ParseError(reason: "expression \"\(text)\" gives \(got.rawValue), want \(type.rawValue)") }
        self = e
    }

    func type() throws -> ValueType {
        switch self {
        case .attribute(let a): return a.type
        case .literal(.int): return .int
        case .literal(.string): return .string
        case .literal(.bool): return .bool
        case .compare(let op, let l, let r):
            let (lt, rt) = (try l.type(), try r.type())
            guard lt == rt else { throw ParseError(reason: "cannot compare \(lt.rawValue) with \(rt.rawValue)") }
            if lt == .bool, op != .eq, op != .ne { throw ParseError(reason: "booleans compare with == and != only") }
            return .bool
        case .and(let l, let r), .or(let l, let r):
            guard try l.type() == .bool, try r.type() == .bool else { throw ParseError(reason: "&& and || take booleans") }
            return .bool
        case .not(let e):
            guard try e.type() == .bool else { throw ParseError(reason: "! takes a boolean") }
            return .bool
        }
    }

    /// Evaluates with `lookup` giving each attribute's value (nil: absent). As in CEL, a
    /// comparison with an absent value is an error (nil), which a filter takes as false.
    public func evaluate(_ lookup: (Attribute) -> Value?) -> Value? {
        switch self {
        case .attribute(let a): return lookup(a)
        case .literal(let v): return v
        case .compare(let op, let l, let r):
            guard let a = l.evaluate(lookup), let b = r.evaluate(lookup) else { return nil }
            return .bool(Self.compare(op, a, b))
        // CEL's commutative logic: false && error is false, true || error is true, else an error stays one.
        case .and(let l, let r):
            let (a, b) = (l.evaluate(lookup), r.evaluate(lookup))
            if a == .bool(false) || b == .bool(false) { return .bool(false) }
            return a == .bool(true) && b == .bool(true) ? .bool(true) : nil
        case .or(let l, let r):
            let (a, b) = (l.evaluate(lookup), r.evaluate(lookup))
            if a == .bool(true) || b == .bool(true) { return .bool(true) }
            return a == .bool(false) && b == .bool(false) ? .bool(false) : nil
        case .not(let e):
            guard case .bool(let b) = e.evaluate(lookup) else { return nil }
            return .bool(!b)
        }
    }

    static func compare(_ op: Comparison, _ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): return order(op, x, y)
        case (.string(let x), .string(let y)): return order(op, x, y)
        case (.bool(let x), .bool(let y)): return op == .eq ? x == y : x != y
        default: return false
        }
    }

    static func order<T: Comparable>(_ op: Comparison, _ x: T, _ y: T) -> Bool {
        switch op {
        case .eq: x == y
        case .ne: x != y
        case .lt: x < y
        case .le: x <= y
        case .gt: x > y
        case .ge: x >= y
        }
    }
}

/// A recursive-descent parser over the expression's scalars.
struct ExpressionParser {
    typealias E = TelemetryExpression
    let s: [Unicode.Scalar]
    var i = 0
    var depth = 0

    init(_ s: [Unicode.Scalar]) { self.s = s }

    var atEnd: Bool { i >= s.count }
    var rest: String { String(String.UnicodeScalarView(s[min(i, s.count)...])) }

    mutating func skipSpace() { while i < s.count, s[i] == " " || s[i] == "\t" || s[i] == "\n" { i += 1 } }

    mutating func eat(_ token: String) -> Bool {
        skipSpace()
        let t = Array(token.unicodeScalars)
        guard i + t.count <= s.count, Array(s[i..<i + t.count]) == t else { return false }
        i += t.count
        return true
    }

    func fail(_ reason: String) -> E.ParseError { E.ParseError(reason: reason) }

    mutating func or() throws -> E {
        var e = try and()
        while eat("||") { e = .or(e, try and()) }
        return e
    }

    mutating func and() throws -> E {
        var e = try unary()
        while eat("&&") { e = .and(e, try unary()) }
        return e
    }

    mutating func unary() throws -> E {
        skipSpace()
        if i < s.count, s[i] == "!", i + 1 >= s.count || s[i + 1] != "=" {
            i += 1
            return .not(try unary())
        }
        let left = try primary()
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if eat(op) { return .compare(E.Comparison(rawValue: op)!, left, try primary()) }
        }
        return left
    }

    mutating func primary() throws -> E {
        skipSpace()
        guard i < s.count else { throw fail("expression ends too early") }
        depth += 1
        defer { depth -= 1 }
        guard depth < 32 else { throw fail("expression nested too deeply") }
        let c = s[i]
        if c == "(" {
            i += 1
            let e = try or()
            guard eat(")") else { throw fail("missing ')'") }
            return e
        }
        if c == "'" || c == "\"" { return .literal(.string(try quoted())) }
        if c == "-" || ("0"..."9").contains(c) {
            let start = i
            i += 1
            while i < s.count, ("0"..."9").contains(s[i]) { i += 1 }
            guard let n = Int(String(String.UnicodeScalarView(s[start..<i]))) else { throw fail("bad number") }
            return .literal(.int(n))
        }
        let name = identifierPath()
        switch name {
        case "": throw fail("unexpected \"\(rest.prefix(20))\"")
        case "true": return .literal(.bool(true))
        case "false": return .literal(.bool(false))
        case "request.headers":
            guard eat("[") else { throw fail("request.headers takes a ['name'] index") }
            skipSpace()
            let header = try quoted()
            guard eat("]") else { throw fail("missing ']'") }
            return .attribute(.requestHeader(header.lowercased()))
        default:
            guard let a = E.Attribute.names[name] else {
                throw fail("unknown or unsupported attribute \"\(name)\"; supported: request.headers['…'], "
                    + E.Attribute.names.keys.sorted().joined(separator: ", "))
            }
            return .attribute(a)
        }
    }

    mutating func identifierPath() -> String {
        skipSpace()
        let start = i
        while i < s.count, s[i].properties.isAlphabetic || ("0"..."9").contains(s[i]) || s[i] == "_" || s[i] == "." { i += 1 }
        return String(String.UnicodeScalarView(s[start..<i]))
    }

    mutating func quoted() throws -> String {
        let q = s[i]
        i += 1
        var out = String.UnicodeScalarView()
        while i < s.count, s[i] != q {
            if s[i] == "\\", i + 1 < s.count { i += 1 }
            out.append(s[i])
            i += 1
        }
        guard i < s.count else { throw fail("unterminated string") }
        i += 1
        return String(out)
    }
}
