import FilterHost
import LuaRuntime
import NIOCore

/// A VM's finished runs not yet added to the loop's stats. A stats update hashes the series
/// name, so the runs of one loop tick are added together at the end of the tick rather than
/// two updates per run.
final class LuaRunTally {
    private let plugin: LuaPluginConfig
    private var stats: StatsScope?
    private var executions = 0
    private var micros = 0

    init(plugin: LuaPluginConfig) { self.plugin = plugin }

    /// Counts one run of `micros` µs; the first of a tick schedules the hand-over (the loop
    /// is asked for only then: a stream answers through a few protocol hops).
    func add(micros: Int, to stats: StatsScope, on loop: @autoclosure () -> EventLoop) {
        if self.stats !== stats {
            flush()
            self.stats = stats
        }
        if executions == 0 { loop().assumeIsolated().execute { self.flush() } }
        executions += 1
        self.micros += micros
    }

    func flush() {
        guard let stats, executions > 0 else { return }
        stats.count(plugin.executionsKey, executions)
        if micros > 0 { stats.count(plugin.timeKey, micros) }
        executions = 0
        micros = 0
    }
}
