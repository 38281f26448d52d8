#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// Ships finished spans to an OTLP/HTTP collector from its own thread, so no event loop
/// ever waits on the collector. Loops only append to a bounded queue under a lock; when the
/// queue is full, or a batch cannot be delivered, the spans are dropped and counted.
public final class SpanExporter: Sendable {
    public struct Counters: Sendable, Equatable {
        public var exported = 0
        public var dropped = 0
    }

    private struct Queue {
        var spans: [SpanRecord] = []
        var counters = Counters()
        var stopping = false
    }

    /// 0: nothing to send yet; 1: a batch is waiting or the exporter is stopping.
    private let queue = ConditionLock(value: 0)
    private let state = NIOLockedValueBox(Queue())
    private let host: String
    private let port: Int
    private let resource: [(String, String)]
    private let capacity: Int
    private let batchSize: Int
    private let flushInterval: Double

    public init(host: String, port: Int, resource: [(String, String)], capacity: Int = 4096, batchSize: Int = 512,
                flushInterval: Double = 1) {
        self.host = host
        self.port = port
        self.resource = resource
        self.capacity = capacity
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        // A thread of its own for the blocking exporter loop.
        DispatchQueue(label: "meshd-span-export").async { [self] in self.run() }
    }

    public var counters: Counters { state.withLockedValue { $0.counters } }

    /// Called on an event loop: never blocks beyond a short lock.
    public func submit(_ span: SpanRecord) {
        let wake = state.withLockedValue { q -> Bool in
            guard q.spans.count < capacity, !q.stopping else {
                q.counters.dropped += 1
                return false
            }
            q.spans.append(span)
            return q.spans.count >= batchSize
        }
        if wake {
            queue.lock()
            queue.unlock(withValue: 1)
        }
    }

    /// Sends what is queued (bounded by one delivery attempt) and stops the thread.
    public func shutdown() {
        state.withLockedValue { $0.stopping = true }
        queue.lock()
        queue.unlock(withValue: 1)
    }

    private func run() {
        while true {
            if queue.lock(whenValue: 1, timeoutSeconds: flushInterval) { queue.unlock(withValue: 0) }
            let (batch, stopping) = state.withLockedValue { q -> ([SpanRecord], Bool) in
                let batch = q.spans
                q.spans.removeAll(keepingCapacity: true)
                return (batch, q.stopping)
            }
            var start = 0
            while start < batch.count {
                let part = Array(batch[start..<min(batch.count, start + batchSize)])
                start += part.count
                let body = OTLPEncoder.exportRequest(part, resource: resource, scope: "meshd")
                let delivered = OTLPHTTPPost.post(body, host: host, port: port)
                state.withLockedValue {
                    if delivered { $0.counters.exported += part.count } else { $0.counters.dropped += part.count }
                }
            }
            if stopping { return }
        }
    }
}

/// One blocking `POST /v1/traces` (OTLP/HTTP, protobuf) with short timeouts; true on a 2xx.
enum OTLPHTTPPost {
    static func post(_ body: [UInt8], host: String, port: Int, timeoutSeconds: Int = 2) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return false }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else { return false }
        let head = "POST /v1/traces HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/x-protobuf\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        guard writeAll(fd, Array(head.utf8)), writeAll(fd, body) else { return false }
        var reply = [UInt8](repeating: 0, count: 64)
        var got = 0
        while got < 12 {
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, 64 - got, 0) }
            if n <= 0 { break }
            got += n
        }
        // "HTTP/1.1 2xx"
        return got >= 12 && reply[9] == UInt8(ascii: "2")
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
