import Foundation
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import Transport

/// Watches the bootstrap file and applies it when its content changes. Polling the
/// content (not inotify) catches every editor's way of saving, including rename-over.
public final class ConfigWatcher: Sendable {
    private let file: String
    private let runtime: ProxyRuntime
    private let logger: Logger
    private let lastText: NIOLockedValueBox<String?>

    public init(file: String, runtime: ProxyRuntime, logger: Logger, initialText: String?) {
        self.file = file
        self.runtime = runtime
        self.logger = logger
        self.lastText = NIOLockedValueBox(initialText)
    }

    /// Re-reads the file now; applies it if it changed. Returns the apply result (nil when unchanged).
    @discardableResult
    public func reload(force: Bool = false) -> Result<Int, ConfigError>? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            if lastText.withLockedValue({ $0 }) != "<unreadable>" {
                logger.error("cannot read config file, keeping the last good config", metadata: ["file": "\(file)"])
                lastText.withLockedValue { $0 = "<unreadable>" }
            }
            return nil
        }
        guard force || text != lastText.withLockedValue({ $0 }) else { return nil }
        lastText.withLockedValue { $0 = text }
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
