import LuaRuntime
import Transport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// LuaPlugin and TrafficExtension rules: one source, a checksum for URLs, known targets,
/// Lua that compiles.
enum ExtensionRules {
    static let luaTargetKinds = ["Gateway", "Service", "VirtualService"]
    static let trafficExtensionTargetKinds = ["Gateway", "GatewayClass", "Service", "ServiceEntry", "VirtualService"]

    static func check(_ p: LuaPluginSpec, _ c: inout Issues) {
        if p.sourceCount != 1 {
            c.add("spec", p.sourceCount == 0 ? "one of inline, file or url is required"
                                             : "only one of inline, file or url may be set")
        }
        if p.url != nil && p.sha256 == nil { c.add("spec.sha256", "sha256 is required with url") }
        if let sha = p.sha256, !isSHA256(sha) { c.add("spec.sha256", "must be 64 hexadecimal characters") }
        if let inline = p.inline, inline.trimmed.isEmpty {
            c.add("spec.inline", "code must not be empty")
        }
        if p.sourceCount == 1, let code = p.code {
            let (chunk, path) = p.file.map { ($0, "spec.file") } ?? p.url.map { ($0, "spec.url") } ?? ("inline code", "spec.inline")
            compiles(code, chunk: chunk, path, &c)
        }
        for name in p.modules.keys.sorted() {
            let path = "spec.modules.\(name)"
            if !LuaPluginConfig.isModuleName(name) {
                c.add(path, "a module name is letters, digits, '_', '-' and '.' (as in require(\"lib.util\"))")
            } else if p.modules[name]!.trimmed.isEmpty {
                c.add(path, "module code must not be empty")
            }
            compiles(p.modules[name]!, chunk: name, path, &c)
        }
        targets(p.selector, p.targetRefs, kinds: luaTargetKinds, &c)
        if let l = p.limits {
            let counts = [("instructions", l.instructions), ("memoryBytes", l.memoryBytes), ("maxRunMs", l.maxRunMs),
                          ("maxPendingCalls", l.maxPendingCalls), ("maxPendingCallsPerStream", l.maxPendingCallsPerStream),
                          ("maxDynamicMetadataBytes", l.maxDynamicMetadataBytes)]
            for (field, value) in counts {
                if let n = value, n <= 0 { c.add("spec.limits.\(field)", "must be positive") }
            }
            for (name, n) in l.sharedDicts ?? [:] where n <= 0 { c.add("spec.limits.sharedDicts.\(name)", "must be positive") }
        }
        for (i, m) in p.match.enumerated() {
            for (j, port) in m.ports.enumerated() { CommonRules.port(port.number, "spec.match[\(i)].ports[\(j)].number", &c) }
        }
    }

    static func check(_ t: TrafficExtension, _ c: inout Issues) {
        if (t.wasm == nil) == (t.lua == nil) { c.add("spec", "exactly one of wasm or lua must be set") }
        if let lua = t.lua {
            let code = lua.inlineCode ?? ""
            if code.isEmpty { c.add("spec.lua.inlineCode", "inlineCode is required") }
            if code.utf8.count > 65536 { c.add("spec.lua.inlineCode", "inlineCode is larger than 64 KiB") }
            compiles(code, chunk: "inlineCode", "spec.lua.inlineCode", &c)
        }
        if let w = t.wasm {
            if (w.url ?? "").isEmpty { c.add("spec.wasm.url", "url is required") }
            if let sha = w.sha256, !sha.isEmpty, !isSHA256(sha) { c.add("spec.wasm.sha256", "must be 64 hexadecimal characters") }
        }
        targets(t.selector, t.targetRefs, kinds: trafficExtensionTargetKinds, &c)
    }

    /// A syntax error is refused here, with its Lua line, rather than by every proxy it reaches.
    static func compiles(_ code: String, chunk: String, _ path: String, _ c: inout Issues) {
        guard !code.trimmed.isEmpty else { return }
        do { _ = try LuaScript(source: code, name: chunk) } catch { c.add(path, "\(error)") }
    }

    static func targets(_ selector: LabelSelector?, _ refs: [PolicyTargetReference], kinds: [String], _ c: inout Issues) {
        if selector != nil && !refs.isEmpty { c.add("spec", "only one of selector or targetRefs may be set") }
        for (i, ref) in refs.enumerated() {
            let p = "spec.targetRefs[\(i)]"
            if let kind = ref.kind {
                if !kinds.contains(kind) { c.add(p + ".kind", "unsupported kind \"\(kind)\" (one of \(kinds.joined(separator: ", ")))") }
                if ref.sectionName != nil && kind != "VirtualService" {
                    c.add(p + ".sectionName", "sectionName is only supported for kind VirtualService")
                }
            } else {
                c.add(p + ".kind", "kind is required")
            }
            if (ref.name ?? "").isEmpty { c.add(p + ".name", "name is required") }
        }
    }

    static func isSHA256(_ s: String) -> Bool {
        s.count == 64 && s.allSatisfy(\.isHexDigit)
    }
}
