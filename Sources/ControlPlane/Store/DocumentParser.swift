import YAML

/// Turns the YAML documents of one file into resources. Problems with a document's fields
/// stay on its resource (for the Validator); a document that cannot become a resource at all
/// (invalid YAML, an unknown kind of an Istio group) is a load error; a kind meshd does not
/// implement (Kubernetes kinds, Gateway API, EnvoyFilter, …) is skipped with a warning.
enum DocumentParser {
    struct Output: Sendable {
        var resources: [Resource] = []
        var errors: [ValidationError] = []
        var warnings: [ValidationError] = []
    }

    private enum Document {
        case resource(Resource)
        case refused(ValidationError)
        case skipped(ValidationError)
    }

    static func parse(_ text: String, file: String) -> Output {
        var out = Output()
        let parser = YAMLParser(text)
        while true {
            let root: Node?
            do {
                root = try parser.nextDocument()
            } catch {
                out.errors.append(yamlError(error, file: file))
                break
            }
            guard let root else { break }
            if case .scalar = root, root.isNull { continue }  // an empty document
            switch document(root, file: file) {
            case .resource(let resource): out.resources.append(resource)
            case .refused(let error): out.errors.append(error)
            case .skipped(let warning): out.warnings.append(warning)
            }
        }
        return out
    }

    private static func document(_ root: Node, file: String) -> Document {
        let location = SourceLocation(file: file, line: root.mark?.line ?? 1)
        let ctx = DecodeContext()
        guard let top = ObjectReader(root, path: "", ctx: ctx) else {
            return .refused(ValidationError(location: location, reason: "a resource must be a map, got \(YAMLScalar.typeName(root))"))
        }
        let apiVersion = top.string("apiVersion")
        let kindName = top.string("kind")
        let meta = top.node("metadata").flatMap { metadata($0, ctx) }
        let specNode = top.node("spec")
        _ = top.node("status")
        guard let apiVersion, let kindName else {
            let missing = apiVersion == nil ? "apiVersion" : "kind"
            return .refused(ValidationError(location: location, path: missing, reason: "required field is missing"))
        }
        let id = "\(kindName)/\(meta?.namespace ?? "default")/\(meta?.name ?? "")"
        // Where the document's own `kind:` / `apiVersion:` are.
        func at(_ key: String) -> SourceLocation {
            ctx.fields.first { $0.path == key }.map { SourceLocation(file: file, line: $0.line) } ?? location
        }
        switch KindSupport.classify(kind: kindName, apiVersion: apiVersion) {
        case .implemented: break
        case .skipped(let note):
            return .skipped(ValidationError(.warning, location: at("kind"), resource: id, path: "kind", reason: note))
        case .unknown(let reason):
            return .refused(ValidationError(location: at("kind"), resource: id, path: "kind", reason: reason))
        }
        guard let kind = ResourceKind(rawValue: kindName) else {
            return .refused(ValidationError(location: at("kind"), resource: id, path: "kind", reason: "unknown kind \"\(kindName)\""))
        }
        guard kind.apiVersions.contains(apiVersion) else {
            return .refused(ValidationError(location: at("apiVersion"), resource: id, path: "apiVersion",
                                            reason: "unknown apiVersion \"\(apiVersion)\" for \(kindName) (use \(kind.apiVersions.joined(separator: ", ")))"))
        }
        top.finish()
        if meta == nil { ctx.report("metadata", "required field is missing") }
        let empty = Node.mapping(Node.Mapping([]))
        var spec = decodeSpec(kind, specNode ?? empty, ctx: ctx)
        if case .luaPlugin(var plugin) = spec {
            PluginSource.resolve(&plugin, yamlFile: file, ctx: ctx)
            spec = .luaPlugin(plugin)
        }
        return .resource(Resource(apiVersion: apiVersion, kind: kind, meta: meta ?? ResourceMeta(name: ""),
                                 location: location, spec: spec, issues: ctx.issues, fields: ctx.fields))
    }

    private static func metadata(_ node: Node, _ ctx: DecodeContext) -> ResourceMeta? {
        guard let r = ObjectReader(node, path: "metadata", ctx: ctx) else { return nil }
        let name = r.string("name")
        let namespace = r.string("namespace")
        let labels = r.stringMap("labels")
        let annotations = r.stringMap("annotations")
        // Kubernetes' own fields, as `kubectl get -o yaml` prints them.
        for key in ["uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generateName", "selfLink", "managedFields", "ownerReferences",
                    "finalizers"] { _ = r.node(key) }
        r.finish()
        if name == nil || name!.isEmpty { ctx.report("metadata.name", "required field is missing") }
        return ResourceMeta(name: name ?? "", namespace: namespace ?? "default", labels: labels, annotations: annotations)
    }

    private static func decodeSpec(_ kind: ResourceKind, _ node: Node, ctx: DecodeContext) -> ResourceSpec {
        func d<T: NodeDecodable>(_ type: T.Type) -> T {
            if let v: T = ObjectReader.decode(node, path: "spec", ctx: ctx) { return v }
            // Not a map: read an empty one, so the resource still has a (blank) spec.
            return ObjectReader.decode(.mapping(Node.Mapping([])), path: "spec", ctx: ctx)!
        }
        switch kind {
        case .virtualService: return .virtualService(d(VirtualService.self))
        case .destinationRule: return .destinationRule(d(DestinationRule.self))
        case .gateway: return .gateway(d(Gateway.self))
        case .serviceEntry: return .serviceEntry(d(ServiceEntry.self))
        case .workloadEntry: return .workloadEntry(d(WorkloadEntry.self))
        case .workloadGroup: return .workloadGroup(d(WorkloadGroup.self))
        case .sidecar: return .sidecar(d(Sidecar.self))
        case .peerAuthentication: return .peerAuthentication(d(PeerAuthentication.self))
        case .requestAuthentication: return .requestAuthentication(d(RequestAuthentication.self))
        case .authorizationPolicy: return .authorizationPolicy(d(AuthorizationPolicy.self))
        case .trafficExtension: return .trafficExtension(d(TrafficExtension.self))
        case .luaPlugin: return .luaPlugin(d(LuaPluginSpec.self))
        case .telemetry: return .telemetry(d(Telemetry.self))
        }
    }

    private static func yamlError(_ error: Error, file: String) -> ValidationError {
        guard let e = error as? YAMLError else {
            return ValidationError(location: SourceLocation(file: file, line: 1), reason: "invalid YAML: \(error)")
        }
        var reason = "invalid YAML: \(e.problem)"
        if let context = e.context, let at = e.contextMark { reason += " (\(context) at line \(at.line))" }
        return ValidationError(location: SourceLocation(file: file, line: e.mark.line), reason: reason)
    }
}
