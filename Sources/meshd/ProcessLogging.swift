import Dispatch
import FilterHost
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
import Logging
import NIOConcurrencyHelpers

enum ProcessLogging {
    /// Logs go to stderr as one line each, with key=value metadata.
    static func bootstrap(level: String, label: String) -> Logger {
        // The level can change while the process runs: admin POST /logging?level=… (Envoy's).
        LogLevels.shared.setAll(LogLevels.parse(level) ?? .info)
        LoggingSystem.bootstrap { label in
            RuntimeLevelLogHandler(label: label, levels: .shared, inner: StreamLogHandler.standardError(label: label))
        }
        return Logger(label: label)
    }

    private static let queue = DispatchQueue(label: "meshd.signals")

    /// How long past its drain timeout a process may take to stop before it is ended hard.
    static let hardExitGraceSeconds = 2.0

    /// Runs `body` once on SIGTERM or SIGINT, off the event loops. With `hardExitAfter`, the
    /// process exits (status 1) that many seconds after the signal whatever `body` waits for:
    /// a stuck event loop must not keep it alive. SIGHUP and SIGUSR1, whose default action
    /// would kill the process without a drain, are logged and ignored unless `onReload` /
    /// `onReopenLogs` give them a job.
    static func onTerminate(hardExitAfter seconds: Double? = nil, _ body: @escaping @Sendable () -> Void) {
        let once = OnceFlag()
        for sig in [SIGTERM, SIGINT] {
            handle(sig) {
                guard once.claim() else { return }
                if let seconds { armHardExit(after: seconds) }
                body()
            }
        }
        let logger = Logger(label: "meshd.signals")
        for (sig, name) in [(SIGHUP, "SIGHUP"), (SIGUSR1, "SIGUSR1")] where handlers[sig] == nil {
            handle(sig) { logger.notice("\(name) received: nothing to do, ignored") }
        }
    }

    /// SIGHUP: re-read the configuration now (what operators expect of a daemon).
    static func onReload(_ body: @escaping @Sendable () -> Void) {
        handle(SIGHUP, body)
    }

    /// SIGUSR1: the access log goes to stdout, so there is no file to reopen; it is flushed.
    static func onReopenLogs(_ body: @escaping @Sendable () -> Void) {
        handle(SIGUSR1, body)
    }

    nonisolated(unsafe) private static var handlers: [Int32: DispatchSourceSignal] = [:]

    /// Replaces the signal's default action with `body`, run on the signal queue.
    /// Call from the main thread before `dispatchMain()`.
    private static func handle(_ sig: Int32, _ body: @escaping @Sendable () -> Void) {
        handlers[sig]?.cancel()
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
        source.setEventHandler(handler: body)
        source.resume()
        handlers[sig] = source
    }

    private static func armHardExit(after seconds: Double) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            // Straight to stderr and _exit: the logging lock or an atexit handler may be what hangs.
            let line = "meshd: shutdown did not finish \(seconds) s after the signal; exiting\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            _exit(1)
        }
    }
}

final class OnceFlag: @unchecked Sendable {
    private var done = false
    private let lock = NIOLock()
    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}
