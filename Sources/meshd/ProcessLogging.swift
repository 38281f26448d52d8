import Dispatch
import Foundation
import Logging

enum ProcessLogging {
    /// Logs go to stderr as one line each, with key=value metadata.
    static func bootstrap(level: String, label: String) -> Logger {
        let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = parsed
            return h
        }
        return Logger(label: label)
    }

    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// Runs `body` once on SIGTERM or SIGINT, off the event loops.
    static func onTerminate(_ body: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "meshd.signals")
        let once = OnceFlag()
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { if once.claim() { body() } }
            source.resume()
            sources.append(source)
        }
    }
}

final class OnceFlag: @unchecked Sendable {
    private var done = false
    private let lock = NSLock()
    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}
