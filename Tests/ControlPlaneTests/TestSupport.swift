import ControlPlane
import FilterHost
import Foundation
import MeshAPI
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

/// Istio's sample files (unchanged, not part of this repository): the directory MESHD_ISTIO_SAMPLES names.
func istioSamplesDirectory() throws -> String {
    guard let dir = ProcessInfo.processInfo.environment["MESHD_ISTIO_SAMPLES"] else {
        throw XCTSkip("MESHD_ISTIO_SAMPLES is not set (a directory of Istio's sample YAML files)")
    }
    guard FileManager.default.fileExists(atPath: dir + "/bookinfo-gateway.yaml") else {
        throw XCTSkip("Istio samples not found at \(dir) (MESHD_ISTIO_SAMPLES)")
    }
    return dir
}

func sample(_ name: String) throws -> String {
    try istioSamplesDirectory() + "/" + name
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cp-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Validation errors as printed.
func errors(_ yaml: String, file: String = "test.yaml") -> [String] {
    Validator.validate(ConfigStore.parse(yaml: yaml, file: file)).map(\.description)
}

/// Builds the proxy's snapshot as the proxy would, failing the test on a refusal.
@discardableResult
func assertSnapshotBuilds(_ b: Bootstrap, file: StaticString = #filePath, line: UInt = #line) -> ProxySnapshot? {
    do {
        return try ProxySnapshot.build(b, version: 1, registry: FilterCatalog.registry)
    } catch {
        XCTFail("ProxySnapshot.build refused the translation: \(error)", file: file, line: line)
        return nil
    }
}

/// Bookinfo's services as ServiceEntries (short and full host names) backed by WorkloadEntries.
let bookinfoRegistryYAML = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage}
spec:
  hosts: [productpage.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.21, ports: {http: 9083}, labels: {app: details, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-v1}
spec: {address: 10.0.0.1, ports: {http: 9081}, labels: {app: productpage, version: v1}, serviceAccount: bookinfo-productpage}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec: {address: 10.0.0.11, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2}
spec: {address: 10.0.0.12, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3}
spec: {address: 10.0.0.13, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1}
spec: {address: 10.0.0.31, ports: {http: 9082}, labels: {app: ratings, version: v1}}
"""

/// The registry YAML plus the given sample files, in that order (later definitions win).
func bookinfoStore(_ test: XCTestCase, samples: [String], extra: String? = nil) throws -> ConfigStore {
    let dir = try temporaryDirectory(test)
    try write(bookinfoRegistryYAML, to: dir + "/registry.yaml")
    var files = [dir + "/registry.yaml"] + (try samples.map(sample))
    if let extra {
        try write(extra, to: dir + "/zz-extra.yaml")
        files.append(dir + "/zz-extra.yaml")
    }
    let store = ConfigStore.load(files: files)
    XCTAssertEqual(Validator.validate(store).map(\.description), [])
    return store
}

extension Bootstrap {
    func cluster(_ name: String) -> Cluster? { clusters.first { $0.name == name } }
    func routeConfig(_ name: String) -> RouteConfig? { routeConfigs.first { $0.name == name } }
}

extension RouteConfig {
    func virtualHost(domain: String) -> VirtualHost? { virtualHosts.first { $0.domains.contains(domain) } }
}

/// Istio's tcp-echo service (port 9000) and two workloads, v1 and v2.
let tcpEchoRegistryYAML = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: tcp-echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v1}
spec: {address: 10.0.0.41, labels: {app: tcp-echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v2}
spec: {address: 10.0.0.42, labels: {app: tcp-echo, version: v2}}
"""
