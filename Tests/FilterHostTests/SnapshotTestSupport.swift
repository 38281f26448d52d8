@testable import FilterHost
import MeshAPI
import Transport
import LuaRuntime
import Filters
import PluginTesting

/// A snapshot from bootstrap YAML, with no native filters registered.
func buildSnapshot(_ yaml: String) throws -> ProxySnapshot {
    try ProxySnapshot.build(try BootstrapLoader.parse(yaml), version: 1, registry: FilterRegistry())
}
