import ControlPlane
import FilterHost
import Filters
import MeshAPI

// The Istio YAML decoder: arbitrary text as a file of the control plane's config directory,
// through the document parser (YAML, kinds, every field decoder), the Validator and the
// Analyzer, then translated for a sidecar and a gateway. What the translator hands a proxy
// must be a config the proxy accepts: invalid resources are left out, never passed on.

private let sidecar = ProxyIdentity.sidecar(name: "productpage-v1", labels: ["app": "productpage", "version": "v1"],
                               appPort: 9080)
private let gateway = ProxyIdentity.gateway(name: "ingressgateway", namespace: "istio-system",
                               labels: ["istio": "ingressgateway"])

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let store = ConfigStore.parse(yaml: text, file: "fuzz.yaml")
    _ = Validator.validate(store)
    _ = Analyzer.analyze(store)
    let translator = Translator(store: store)
    for proxy in [sidecar, gateway] {
        let translation = translator.translate(for: proxy)
        do {
            _ = try ProxySnapshot.build(translation.bootstrap, version: 1, registry: FilterCatalog.registry)
        } catch {
            fatalError("the proxy refuses what the translator made for \(proxy.name): \(error)")
        }
    }
    return 0
}
