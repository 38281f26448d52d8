import FilterHost
import Filters
import MeshAPI

// The bootstrap decoder: arbitrary text as a `meshd proxy --config` file (YAML, so JSON too)
// through BootstrapLoader's decoding and ProxySnapshot's validation with every native filter
// registered (route tables, RE2 regexes, filter configs, Lua compilation, listener limits).
// A config that is accepted must build again after a round trip through discovery's resources.

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let bootstrap = try? BootstrapLoader.parse(text, file: "fuzz.yaml"),
          (try? ProxySnapshot.build(bootstrap, version: 1, registry: FilterCatalog.registry)) != nil else { return 0 }
    do {
        let again = try ResourceCodec.bootstrap(from: ResourceCodec.resources(of: bootstrap))
        _ = try ProxySnapshot.build(again, version: 2, registry: FilterCatalog.registry)
    } catch {
        fatalError("an accepted bootstrap is refused after a discovery round trip: \(error)")
    }
    return 0
}
