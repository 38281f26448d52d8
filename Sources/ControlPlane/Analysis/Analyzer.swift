#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Checks over a whole store, like `istioctl analyze`: what one resource names that another
/// should define, what several resources claim at once, what no workload is selected by.
/// Istio's message codes (AnalysisMessage) where Istio has one; schema and per-resource rules
/// are the Validator's (reported here as IST0106 by `report`).
public enum Analyzer {
    /// What the analysis reads besides the store.
    public struct Inputs: Sendable {
        /// Kubernetes Services, workloads and Secrets of the analyzed files.
        public var kubernetes: KubernetesInventory
        /// Where a Gateway's `credentialName` is looked up as `<directory>/<credentialName>/tls.crt|tls.key`.
        public var secretDirectories: [String]

        public init(kubernetes: KubernetesInventory = KubernetesInventory(), secretDirectories: [String] = []) {
            self.kubernetes = kubernetes
            self.secretDirectories = secretDirectories
        }
    }

    /// The analyzers, as `meshd analyze --list-analyzers` prints them (istioctl's names where Istio has the analyzer).
    public static let analyzers: [(name: String, description: String)] = [
        ("authz.AuthorizationPoliciesAnalyzer", "Checks the necessary preconditions for the AuthorizationPolicy resources (a selector selects workloads)"),
        ("destinationrule.CaCertificateAnalyzer", "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL"),
        ("destinationrule.PodNotSelectedAnalyzer", "Checks that the subsets of a DestinationRule select workloads"),
        ("destinationrule.UnknownHostAnalyzer", "Checks that the host of a DestinationRule is a service of the mesh"),
        ("gateway.ConflictingGatewayAnalyzer", "Checks a gateway's selector, port number and hosts"),
        ("gateway.IngressGatewayPortAnalyzer", "Checks a gateway's ports against the gateway's Kubernetes service ports"),
        ("gateway.SecretAnalyzer", "Checks a gateway's referenced credentials (a secret directory or a Kubernetes Secret with tls.crt and tls.key)"),
        ("meshd.DuplicateResourceAnalyzer", "Checks that no resource is defined twice"),
        ("meshd.FieldSupportAnalyzer", "Reports fields meshd accepts but does not enforce, and kinds it skips"),
        ("meshd.PluginTargetAnalyzer", "Checks the targets of LuaPlugins and TrafficExtensions"),
        ("meshd.UnboundGatewayAnalyzer", "Checks that some VirtualService binds each Gateway"),
        ("peerauthentication.MTLSAnalyzer", "Checks that no DestinationRule disables TLS to workloads a STRICT PeerAuthentication covers"),
        ("schema.ValidationAnalyzer", "Runs schema validation as an analyzer and reports any violations"),
        ("security.SelectorAnalyzer", "Checks that the selectors of PeerAuthentications and RequestAuthentications select workloads"),
        ("service.PortNameAnalyzer", "Checks the port names associated with each Kubernetes service"),
        ("serviceentry.ProtocolAdressesAnalyzer", "Checks the addresses associated with a ServiceEntry serving TCP (or unset) protocol ports"),
        ("sidecar.SelectorAnalyzer", "Validates that sidecars that define a workload selector match at least one workload, and that there aren't multiple sidecar resources that select overlapping workloads"),
        ("virtualservice.ConflictingMeshGatewayHostsAnalyzer", "Checks if multiple virtual services associated with the mesh gateway have conflicting hosts"),
        ("virtualservice.DestinationHostAnalyzer", "Checks the destination hosts associated with each virtual service"),
        ("virtualservice.DestinationRuleAnalyzer", "Checks the destination rules associated with each virtual service"),
        ("virtualservice.GatewayAnalyzer", "Checks the gateways associated with each virtual service"),
        ("virtualservice.MatchAnalyzer", "Checks for rules and matches a previous rule makes unreachable"),
    ]

    public static func analyze(_ store: ConfigStore, registry: Registry? = nil, inputs: Inputs = Inputs()) -> [Finding] {
        var registry = registry ?? Registry(store: store)
        let k8s = inputs.kubernetes.registryEntries()
        registry.add(services: k8s.services, workloads: k8s.workloads)
        var a = Analysis(store: store, registry: registry, inputs: inputs)
        a.run()
        return sorted(a.findings)
    }

    /// Everything `meshd analyze` reports: the store's load errors and every resource's
    /// validation errors (IST0106), kinds skipped and fields not enforced (warnings), then the analysis.
    public static func report(_ store: ConfigStore, inputs: Inputs = Inputs()) -> [Finding] {
        // Files that are not YAML are parse errors (`parseErrors`), not messages.
        let invalid = store.loadErrors.filter { $0.resource != nil } + Validator.validate(store.resources)
        var findings = invalid.map {
            Finding(.schemaValidationError, location: $0.location, resource: $0.resource, path: $0.path,
                    message: "Schema validation error: " + ($0.path.isEmpty ? "" : "\($0.path): ") + $0.reason)
        }
        findings += store.loadWarnings.filter { !inputs.kubernetes.reads($0.resource) }.map {
            Finding(.kindSkipped, location: $0.location, resource: $0.resource, path: $0.path, message: $0.reason)
        }
        let refused = Set(invalid.compactMap(\.resource))
        findings += Validator.warnings(store.resources.filter { !refused.contains($0.id) }).map {
            Finding(.notEnforced, location: $0.location, resource: $0.resource, path: $0.path, message: "\($0.path): \($0.reason)")
        }
        return sorted(findings + analyze(store, inputs: inputs))
    }

    /// Files that could not be read or parsed as YAML: istioctl's "Error(s) adding files" (exit status 65).
    public static func parseErrors(_ store: ConfigStore) -> [ValidationError] {
        store.loadErrors.filter { $0.resource == nil }
    }

    static func sorted(_ findings: [Finding]) -> [Finding] {
        findings.sorted { ($0.location, $0.path, $0.code, $0.message) < ($1.location, $1.path, $1.code, $1.message) }
    }
}

/// One analysis run: the store, its lookups and what was found.
struct Analysis {
    let store: ConfigStore
    let registry: Registry
    let index: ConfigIndex
    let inputs: Analyzer.Inputs
    /// Resources by id, for the line of a finding's field.
    let resources: [String: Resource]
    var findings: [Finding] = []

    init(store: ConfigStore, registry: Registry, inputs: Analyzer.Inputs) {
        self.store = store
        self.registry = registry
        self.index = ConfigIndex(store)
        self.inputs = inputs
        var byID: [String: Resource] = [:]
        for r in store.effective { byID[r.id] = r }
        resources = byID
    }

    var kubernetes: KubernetesInventory { inputs.kubernetes }

    /// Whether the input says which workloads exist (Kubernetes Pods or workload controllers,
    /// WorkloadEntries): only then can a selector be found to select nothing. Otherwise meshd's
    /// workloads are sidecars that register when they connect, which no file lists.
    var inputDeclaresWorkloads: Bool { !kubernetes.workloads.isEmpty || !store.workloadEntries.isEmpty }

    /// Workloads the input declares in `namespace` (any namespace when nil) whose labels contain `selector`.
    func declaredWorkloads(selectedBy selector: [String: String], namespace: String?) -> [WorkloadInstance] {
        registry.workloads.filter { w in
            guard case .workloadEntry = w.origin else { return false }
            return (namespace == nil || w.namespace == namespace) && w.labels.matches(selector)
        }
    }

    mutating func add<T>(_ type: AnalysisMessage, _ c: Config<T>, _ path: String, _ message: String) {
        let location = resources[c.id]?.location(of: path) ?? c.location
        findings.append(Finding(type, location: location, resource: c.id, path: path, message: message))
    }

    mutating func run() {
        for (old, new) in store.duplicates {
            findings.append(Finding(.duplicateResource, location: old.location, resource: old.id,
                                    message: "defined again at \(new.location); the later definition is used"))
        }
        for vs in index.virtualServices { virtualService(vs) }
        meshHostConflicts()
        gateways()
        for dr in index.destinationRules { destinationRule(dr) }
        for se in store.serviceEntries { serviceEntryAddresses(se) }
        sidecarSelectors()
        securityPolicies()
        kubernetesPortNames()
        for p in store.luaPlugins { targets(p, p.spec.targetRefs) }
        for t in store.trafficExtensions {
            targets(t, t.spec.targetRefs)
            if t.spec.wasm != nil { add(.unsupportedExtension, t, "spec.wasm", "meshd runs Lua only; this Wasm extension is ignored") }
        }
    }

    /// A label selector as Kubernetes prints it: `app=a,version=v1`.
    static func selectorString(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Go's `%q` of a string (enough for names and hosts).
    static func quoted(_ s: String) -> String {
        "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}
