import Foundation
import MeshAPI
import NIOCore
import Transport

/// Istio's access log, one line per stream on stdout, TEXT or JSON (`accessLogEncoding`).
/// Each loop buffers its lines and writes them in one syscall, at most 50 ms later.
final class AccessLogWriter {
    private let eventLoop: EventLoop
    private let encoding: AccessLogEncoding
    private var buffer: [UInt8] = []
    private var flushScheduled = false

    init(eventLoop: EventLoop, encoding: AccessLogEncoding = .text) {
        self.eventLoop = eventLoop
        self.encoding = encoding
        buffer.reserveCapacity(16 * 1024)
    }

    func record(_ info: StreamInfo) {
        let entry = AccessLogEntry(info)
        buffer.append(contentsOf: (encoding == .json ? entry.json : entry.text).utf8)
        if buffer.count > 32 * 1024 { flush() } else if !flushScheduled {
            flushScheduled = true
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.scheduleTask(in: .milliseconds(50)) { bound.value.flush() }
        }
    }

    func flush() {
        flushScheduled = false
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(1, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
