import COpenSSL
import MeshAPI

/// A TLS context could not be built: names the file (if any) and OpenSSL's or the OS's reason.
public struct TLSConfigurationError: Error, CustomStringConvertible {
    /// What failed, e.g. "cannot load private key from".
    public let operation: String
    /// The file involved, if any.
    public let file: String?
    /// OpenSSL's error text (ERR_error_string) or strerror for file-system failures.
    public let reason: String

    public init(operation: String, file: String? = nil, reason: String) {
        self.operation = operation
        self.file = file
        self.reason = reason
    }

    public var description: String {
        if let file { return "\(operation) \(file): \(reason)" }
        return "\(operation): \(reason)"
    }
}

/// A handshake failure or fatal TLS error on one connection.
public struct TLSError: Error, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { "TLS error: \(message)" }
}

/// OpenSSL keeps errors in a per-thread queue; an event loop thread serves many
/// connections, so every failure drains it completely and every call starts clean.
package enum OpenSSLErrorQueue {
    /// Pops all queued errors and renders them as ERR_error_string text ("" if none).
    package static func drain() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            messages.append(render(code))
        }
        return messages.joined(separator: "; ")
    }

    package static func clear() {
        ERR_clear_error()
    }

    private static func render(_ code: UInt) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
            ERR_error_string_n(code, buffer.baseAddress, buffer.count)
            return String(cString: buffer.baseAddress!)
        }
    }

    /// The drained queue, or `fallback` when OpenSSL queued nothing.
    package static func drain(or fallback: String) -> String {
        let text = drain()
        return text.isEmpty ? fallback : text
    }
}
