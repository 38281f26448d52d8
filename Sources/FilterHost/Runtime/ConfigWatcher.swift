#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import Transport

/// Watches the bootstrap file and applies it when its content changes. Polling the
/// content (not inotify) catches every editor's way of saving, including rename-over.
///
/// A writer that is not atomic leaves the file half-written for a while (truncated, then
/// written, maybe in pieces), so the watcher acts only on text that is stable: a change is
/// acted on when the next poll reads the same text again. Text that still fails to parse or
/// validate is refused only once it has stayed the same for `refusalDelay` too (a writer may
/// pause mid-file for longer than a poll); until then it is tried again at every poll, and a
/// further change replaces it. An atomic rename-over is read whole at once.
public final class ConfigWatcher: Sendable {
    private let file: String
    private let runtime: ProxyRuntime
    private let logger: Logger
    private let refusalDelay: TimeAmount
    /// Polls, `reload(force:)` and their state, one at a time.
    private let queue = DispatchQueue(label: "meshd.config-watch")
    private let state: NIOLockedValueBox<State>

    private struct State {
        /// The text last applied or refused.
        var acted: String?
        /// What the last poll read (nil: unreadable) while it differs from `acted`, and since when.
        var pending: (text: String?, since: NIODeadline)?
        var unreadableLogged = false
        var stopped = false
    }

    public init(file: String, runtime: ProxyRuntime, logger: Logger, initialText: String?,
                refusalDelay: TimeAmount = .seconds(1)) {
        self.file = file
        self.runtime = runtime
        self.logger = logger
        self.refusalDelay = refusalDelay
        self.state = NIOLockedValueBox(State(acted: initialText))
    }

    /// Re-reads the file now and applies it (`POST /reload`): no waiting for a stable text,
    /// a refusal counts at once. Returns the apply result (nil when unreadable, or unchanged
    /// without `force`).
    @discardableResult
    public func reload(force: Bool = false) -> Result<Int, ConfigError>? {
        queue.sync {
            guard let text = read() else {
                logger.error("cannot read config file, keeping the last good config", metadata: ["file": "\(file)"])
                return nil
            }
            let unchanged = state.withLockedValue { s -> Bool in
                defer { s.acted = text; s.pending = nil }
                return s.acted == text
            }
            guard force || !unchanged else { return nil }
            return apply(text, recordRefusal: true)
        }
    }

    /// One poll: acts on a changed text once two polls in a row read it.
    func poll() {
        dispatchPrecondition(condition: .onQueue(queue))
        let text = read()
        let now = NIODeadline.now()
        let settled = state.withLockedValue { s -> (text: String?, since: NIODeadline)? in
            if let text, text == s.acted {
                s.pending = nil
                s.unreadableLogged = false
                return nil
            }
            guard let pending = s.pending, pending.text == text else {
                s.pending = (text, now)  // first sight: wait for the next poll
                return nil
            }
            return pending
        }
        guard let settled else { return }
        guard let text = settled.text else {
            let log = state.withLockedValue { s -> Bool in
                defer { s.unreadableLogged = true }
                return !s.unreadableLogged
            }
            if log { logger.error("cannot read config file, keeping the last good config", metadata: ["file": "\(file)"]) }
            return
        }
        let mayRefuse = now - settled.since >= refusalDelay
        let result = apply(text, recordRefusal: mayRefuse)
        if case .failure(let e) = result, !mayRefuse {
            logger.debug("config file does not load yet; waiting for it to settle", metadata: ["reason": "\(e.description)"])
            return
        }
        state.withLockedValue {
            $0.acted = text
            $0.pending = nil
        }
    }

    private func read() -> String? {
        try? String(contentsOfFile: file, encoding: .utf8)
    }

    private func apply(_ text: String, recordRefusal: Bool) -> Result<Int, ConfigError> {
        let bootstrap: Bootstrap
        do {
            bootstrap = try BootstrapLoader.parse(text, file: file)
        } catch {
            let e = error as? ConfigError ?? ConfigError(file: file, path: "", reason: "\(error)")
            return recordRefusal ? runtime.refuseExternally(e) : .failure(e)
        }
        return runtime.apply(bootstrap, recordRefusal: recordRefusal)
    }

    /// Polls every `interval` (measured from the end of the previous poll, so slow applies never pile up).
    public func start(interval: TimeAmount) {
        let delay = DispatchTimeInterval.nanoseconds(Int(interval.nanoseconds))
        @Sendable func next() {
            queue.asyncAfter(deadline: .now() + delay) { [self] in
                guard !state.withLockedValue({ $0.stopped }) else { return }
                poll()
                next()
            }
        }
        next()
    }

    public func stop() {
        state.withLockedValue { $0.stopped = true }
    }
}
