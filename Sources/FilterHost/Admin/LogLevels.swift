import Logging
import NIOConcurrencyHelpers

/// The process's log levels, changeable while it runs (admin `/logging`, Envoy's). Every
/// logger the logging system makes reads its level here, by its label: one level for all,
/// and an override per label set by `/logging?<label>=<level>`.
public final class LogLevels: Sendable {
    public static let shared = LogLevels()

    private struct State {
        var all: Logger.Level = .info
        var byLabel: [String: Logger.Level] = [:]
        /// Every label a logger was made for, for the listing.
        var labels: Set<String> = []
    }

    private let state = NIOLockedValueBox(State())

    public func level(for label: String) -> Logger.Level {
        state.withLockedValue { $0.byLabel[label] ?? $0.all }
    }

    public func register(_ label: String) {
        state.withLockedValue { _ = $0.labels.insert(label) }
    }

    /// Sets every logger's level (clearing the per-label ones).
    public func setAll(_ level: Logger.Level) {
        state.withLockedValue {
            $0.all = level
            $0.byLabel = [:]
        }
    }

    /// Sets one logger's level; false when no logger has that label.
    public func set(_ label: String, _ level: Logger.Level) -> Bool {
        state.withLockedValue {
            guard $0.labels.contains(label) else { return false }
            $0.byLabel[label] = level
            return true
        }
    }

    /// Each logger's label and level, sorted by label.
    public var listing: [(label: String, level: Logger.Level)] {
        state.withLockedValue { s in s.labels.sorted().map { ($0, s.byLabel[$0] ?? s.all) } }
    }

    /// Envoy's level names (spdlog's) to swift-log's; `off` keeps only critical messages,
    /// swift-log having no level above it.
    public static func parse(_ name: String) -> Logger.Level? {
        switch name.lowercased() {
        case "warn": .warning
        case "err": .error
        case "off": .critical
        default: Logger.Level(rawValue: name.lowercased())
        }
    }

    public static let names = Logger.Level.allCases.map(\.rawValue)
}

/// A log handler whose level is `LogLevels`' for its label, read at every call (a lock, no
/// allocation); writes through the wrapped handler.
public struct RuntimeLevelLogHandler: LogHandler {
    private var inner: any LogHandler
    private let label: String
    private let levels: LogLevels

    public init(label: String, levels: LogLevels, inner: any LogHandler) {
        var inner = inner
        // This handler decides what is logged; the wrapped one writes all it is given.
        inner.logLevel = .trace
        self.inner = inner
        self.label = label
        self.levels = levels
        levels.register(label)
    }

    public var logLevel: Logger.Level {
        get { levels.level(for: label) }
        // A logger's own `logLevel = …` changes its label's level, as `/logging?<label>=` does.
        set { _ = levels.set(label, newValue) }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) { inner.log(event: event) }
}
