import ArgumentParser
import MeshAPI
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

/// A runtime failure of a client command (the control plane or a proxy unreachable, a proxy
/// unknown): printed as one `error: …` line, exit status 1, never the usage text.
struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads JSON from an HTTP endpoint of the control plane or a proxy's admin server.
/// A plain blocking HTTP/1.0 GET: it keeps FoundationNetworking (libcurl and its TLS
/// stack) out of the binary, which would add megabytes to every proxy's memory.
enum StatusFetch {
    /// `what` names the server in errors: "the control plane", "the proxy's admin endpoint".
    static func json(_ address: String, _ path: String, what: String) throws(CLIFailure) -> Any {
        let body = try get(address, path, what: what)
        guard let value = try? JSONText.parse(body) else {
            throw CLIFailure("\(what) at \(address) answered \(path) with something other than JSON")
        }
        return value
    }

    static func get(_ address: String, _ path: String, what: String) throws(CLIFailure) -> Data {
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw CLIFailure("\(what): bad address \"\(address)\" (expected HOST:PORT)")
        }
        switch httpGet(host: String(parts[0]), port: port, path: path) {
        case .failure(let reason): throw CLIFailure("cannot reach \(what) at \(address): \(reason.description)")
        case .success((200, let body)): return body
        case .success((let status, _)):
            throw CLIFailure("\(what) at \(address) answered \(path) with status \(status)")
        }
    }

    static func proxies(_ statusAddress: String) throws(CLIFailure) -> [[String: Any]] {
        (try json(statusAddress, "/debug/syncz", what: "the control plane") as? [[String: Any]]) ?? []
    }

    /// The proxy's /clusters page: "cluster::host" → its health flags ("healthy", or
    /// "/failed_outlier_check" when outlier detection ejected it).
    static func health(_ admin: String) throws(CLIFailure) -> [String: String] {
        let body = try get(admin, "/clusters", what: "the proxy's admin endpoint")
        var out: [String: String] = [:]
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") {
            let f = line.components(separatedBy: "::")
            if f.count == 4, f[2] == "health_flags" { out[f[0] + "::" + f[1]] = f[3] }
        }
        return out
    }

    /// Why a socket call failed, as the C library words it ("connection refused").
    struct SocketError: Error, CustomStringConvertible {
        let description: String
        static func lastError() -> SocketError {
            let text = String(cString: strerror(errno))
            return SocketError(description: text.prefix(1).lowercased() + text.dropFirst())
        }
    }

    private static func httpGet(host: String, port: UInt16, path: String) -> Result<(Int, Data), SocketError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &info)
        guard resolved == 0, let ai = info else {
            return .failure(SocketError(description: String(cString: gai_strerror(resolved))))
        }
        defer { freeaddrinfo(info) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { return .failure(.lastError()) }
        defer { close(fd) }
        // SO_SNDTIMEO bounds connect() too, on Linux.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { return .failure(.lastError()) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return .failure(.lastError()) }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 { return .failure(.lastError()) }
            if n == 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        guard let end = response.firstRange(of: Array("\r\n\r\n".utf8)) else {
            return .failure(SocketError(description: "the answer is not HTTP"))
        }
        // "HTTP/1.1 200 OK": the status is the second word.
        let statusLine = String(decoding: response[..<end.lowerBound], as: UTF8.self).prefix { $0 != "\r" }
        let words = statusLine.split(separator: " ")
        let status = words.count > 1 ? Int(words[1]) ?? 0 : 0
        return .success((status, response.subdata(in: end.upperBound..<response.endIndex)))
    }
}
