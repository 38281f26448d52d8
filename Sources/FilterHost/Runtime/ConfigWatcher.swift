import Foundation
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore

/// Watches the bootstrap file and applies it when its content changes. Polling the
/// content (not inotify) catches every editor's way of saving, including rename-over.
public final class ConfigWatcher: Sendable {
    private let file: String
    private let runtime: ProxyRuntime
    private let logger: Logger
    private let lastText: NIOLockedValueBoxString

    public init(file: String, runtime: ProxyRuntime, logger: Logger, initialText: String?) {
        self.file = file
        self.runtime = runtime
        self.logger = logger
        self.lastText = NIOLockedValueBoxString(initialText)
    }

    /// Re-reads the file now; applies it if it changed. Returns the apply result (nil when unchanged).
    @discardableResult
    public func reload(force: Bool = false) -> Result<Int, ConfigError>? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            if lastText.get() != "<unreadable>" {
                logger.error("cannot read config file, keeping the last good config", metadata: ["file": "\(file)"])
                lastText.set("<unreadable>")
            }
            return nil
        }
        guard force || text != lastText.get() else { return nil }
        lastText.set(text)
        do {
            return runtime.apply(try BootstrapLoader.parse(text, file: file))
        } catch let e as ConfigError {
            return runtime.refuseExternally(e)
        } catch {
            return runtime.refuseExternally(ConfigError(file: file, path: "", reason: "\(error)"))
        }
    }

    public func start(interval: TimeAmount) {
        runtime.group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            DispatchQueue.global().async { self.reload() }
        }
    }
}

/// A lock-protected optional string.
final class NIOLockedValueBoxString: Sendable {
    private let box: NIOLockedValueBox<String?>
    init(_ v: String?) { box = NIOLockedValueBox(v) }
    func get() -> String? { box.withLockedValue { $0 } }
    func set(_ v: String?) { box.withLockedValue { $0 = v } }
}
