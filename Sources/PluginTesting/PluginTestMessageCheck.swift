import MeshAPI
import NIOHTTP1
import Transport

/// Whether a message the run produced could go on the wire as it is: what `meshd plugin
/// test` prints must be a valid HTTP message, or the run fails (a plugin that leaves
/// `content-length: 2` on an empty body hangs an HTTP/1.1 client and breaks HTTP/2).
enum PluginTestMessageCheck {
    /// What is wrong with the request as it reached the upstream; empty when it is valid.
    static func request(_ r: PluginTestResult.UpstreamRequest) -> [String] {
        var problems: [String] = []
        if !isToken(r.head.method) { problems.append("method \"\(r.head.method)\" is not a token") }
        if r.head.path.isEmpty || r.head.path.utf8.contains(where: { $0 <= 32 || $0 == 127 }) {
            problems.append(":path \"\(r.head.path)\" is empty or has spaces or control characters")
        }
        if r.head.authority.utf8.contains(where: { $0 <= 32 || $0 == 127 }) {
            problems.append(":authority \"\(r.head.authority)\" has spaces or control characters")
        }
        problems += fields(r.head.headers, "header")
        problems += framing(r.head.headers, bodyCount: r.body.count, complete: r.complete)
        if let t = r.trailers { problems += fields(t, "trailer") }
        return problems.map { "the request to the upstream is not a valid HTTP message: " + $0 }
    }

    /// What is wrong with the response as it reached the client; empty when it is valid.
    static func response(_ r: PluginTestResult.ClientResponse, requestMethod: String) -> [String] {
        var problems: [String] = []
        let status = r.head.status
        if !(100...599).contains(status) { problems.append(":status \(status) is not between 100 and 599") }
        if let reason = r.head.reason, reason.utf8.contains(where: { $0 != 9 && ($0 < 32 || $0 == 127) }) {
            problems.append("the reason phrase has control characters")
        }
        problems += fields(r.head.headers, "header")
        // 1xx, 204 and 304 never have a body; the answer to HEAD has none whatever it announces.
        let noBodyStatus = (100...199).contains(status) || status == 204 || status == 304
        if noBodyStatus, r.head.headers.contains(name: "content-length"), status != 304 {
            problems.append("a \(status) response must not have content-length")
        }
        if requestMethod == "HEAD" || noBodyStatus {
            if !r.body.isEmpty { problems.append("a \(requestMethod == "HEAD" ? "response to HEAD" : "\(status) response") has a body (\(r.body.count) bytes)") }
        } else {
            problems += framing(r.head.headers, bodyCount: r.body.count, complete: r.complete)
        }
        if let t = r.trailers { problems += fields(t, "trailer") }
        return problems.map { "the response to the client is not a valid HTTP message: " + $0 }
    }

    /// content-length against the body, and not together with transfer-encoding.
    private static func framing(_ headers: HTTPHeaders, bodyCount: Int, complete: Bool) -> [String] {
        let lengths = headers["content-length"].flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmed }
        guard !lengths.isEmpty else { return [] }
        var problems: [String] = []
        if headers.contains(name: "transfer-encoding") {
            problems.append("it has both content-length and transfer-encoding")
        }
        guard let first = lengths.first, let length = Int(first), length >= 0, first.allSatisfy(\.isASCII) else {
            return problems + ["content-length \"\(lengths.joined(separator: ","))\" is not a number of bytes"]
        }
        if lengths.contains(where: { $0 != first }) {
            return problems + ["content-length has different values (\(lengths.joined(separator: ", ")))"]
        }
        if complete, length != bodyCount {
            problems.append("content-length says \(length) but the body has \(bodyCount) bytes")
        }
        return problems
    }

    /// Names are tokens; values have no CR, LF, NUL or other control characters (tab aside).
    private static func fields(_ headers: HTTPHeaders, _ what: String) -> [String] {
        var problems: [String] = []
        for (name, value) in headers {
            if !isToken(name) { problems.append("\(what) name \"\(name)\" is not a token") }
            if value.utf8.contains(where: { $0 != 9 && ($0 < 32 || $0 == 127) }) {
                problems.append("\(what) \(name) has a control character (CR, LF or NUL) in its value")
            }
        }
        return problems
    }

    /// RFC 9110 token: one or more tchar.
    private static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(c)
            }
        }
    }
}
