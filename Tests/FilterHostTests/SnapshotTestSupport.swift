@testable import FilterHost
import MeshAPI

/// A snapshot from bootstrap YAML, with no native filters registered.
func buildSnapshot(_ yaml: String) throws -> ProxySnapshot {
    try ProxySnapshot.build(try BootstrapLoader.parse(yaml), version: 1, registry: FilterRegistry())
}
