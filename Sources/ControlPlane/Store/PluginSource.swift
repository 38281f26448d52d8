#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads a LuaPlugin's source at load time: `inline` as is, `file` relative to the YAML
/// file that names it, `url` only as `file://` (meshd does not fetch over the network).
/// A given `sha256` must match the bytes read; `url` requires one.
enum PluginSource {
    static func resolve(_ spec: inout LuaPluginSpec, yamlFile: String, ctx: DecodeContext) {
        guard spec.sourceCount == 1 else { spec.code = nil; return }
        if let inline = spec.inline {
            spec.code = inline
            if let sha = spec.sha256 { check(Array(inline.utf8), sha, ctx) }
            return
        }
        let path: String
        let field: String
        if let file = spec.file {
            path = file
            field = "spec.file"
        } else if let url = spec.url {
            field = "spec.url"
            guard url.hasPrefix("file://") else {
                ctx.report(field, "only file:// URLs can be fetched by meshd (got \"\(url)\"); use file or inline")
                return
            }
            guard spec.sha256 != nil else { return }  // the validator reports the missing sha256
            path = String(url.dropFirst("file://".count))
        } else {
            return
        }
        let resolved = path.hasPrefix("/") ? path
            : URL(fileURLWithPath: yamlFile).deletingLastPathComponent().appendingPathComponent(path).path
        guard let data = FileManager.default.contents(atPath: resolved) else {
            ctx.report(field, "cannot read \(resolved)")
            return
        }
        guard let text = String(data: data, encoding: .utf8) else {
            ctx.report(field, "\(resolved) is not UTF-8 text")
            return
        }
        if let sha = spec.sha256, !check(Array(data), sha, ctx) { return }
        spec.code = text
    }

    @discardableResult
    private static func check(_ bytes: [UInt8], _ expected: String, _ ctx: DecodeContext) -> Bool {
        let actual = SHA256.hex(bytes)
        guard actual == expected.lowercased() else {
            ctx.report("spec.sha256", "does not match the source (its sha256 is \(actual))")
            return false
        }
        return true
    }
}
