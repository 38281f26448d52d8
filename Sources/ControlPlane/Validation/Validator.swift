/// Checks resources the way `istioctl validate` does: the schema (unknown fields, wrong
/// types, unknown enum values, found while loading) and each kind's rules.
public enum Validator {
    /// The store's load errors followed by every resource's errors.
    public static func validate(_ store: ConfigStore) -> [ValidationError] {
        store.loadErrors + validate(store.resources)
    }

    public static func validate(_ resources: [Resource]) -> [ValidationError] {
        resources.flatMap(validate)
    }

    public static func validate(_ resource: Resource) -> [ValidationError] {
        var c = Issues()
        c.list = resource.issues
        switch resource.spec {
        case .virtualService(let s): VirtualServiceRules.check(s, &c)
        case .destinationRule(let s): DestinationRuleRules.check(s, &c)
        case .gateway(let s): GatewayRules.check(s, &c)
        case .serviceEntry(let s): ServiceEntryRules.check(s, &c)
        case .workloadEntry(let s): ServiceEntryRules.check(workloadEntry: s, "spec", &c, requireAddress: true)
        case .workloadGroup(let s):
            if let t = s.template { ServiceEntryRules.check(workloadEntry: t, "spec.template", &c, requireAddress: false) }
        case .sidecar(let s): SidecarRules.check(s, &c)
        case .peerAuthentication(let s): SecurityRules.check(s, &c)
        case .requestAuthentication(let s): SecurityRules.check(s, &c)
        case .authorizationPolicy(let s): SecurityRules.check(s, &c)
        case .trafficExtension(let s): ExtensionRules.check(s, &c)
        case .luaPlugin(let s): ExtensionRules.check(s, &c)
        }
        // A field already reported as unreadable is not reported again as missing.
        let decodePaths = Set(resource.issues.map(\.path))
        let rules = c.list.dropFirst(resource.issues.count).filter { !decodePaths.contains($0.path) }
        return (resource.issues + rules).map {
            ValidationError(location: resource.location, resource: resource.id, path: $0.path, reason: $0.reason)
        }
    }
}
