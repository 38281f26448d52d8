import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// How a read command prints: a table for people, JSON or YAML for programs (`-o`, as istioctl).
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, yaml
}

struct OutputOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: table (default), json or yaml.")
    var output: OutputFormat?

    @Flag(help: "The same as -o json.")
    var json = false

    var format: OutputFormat { output ?? (json ? .json : .table) }

    func validate() throws {
        if json, let output, output != .json { throw ValidationError("--json and -o \(output.rawValue) disagree: give one") }
    }

    /// Prints `value` (`JSONText`'s untyped tree) as JSON or YAML.
    func emit(_ value: Any) throws {
        let text = JSONText.render(value, pretty: true)
        switch format {
        case .json, .table: print(text)
        case .yaml:
            let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            print(YAMLText.render(value), terminator: "")
        }
    }
}

/// Block-style YAML of a JSON value: keys sorted, strings double-quoted (JSON's escapes are
/// YAML's), so any YAML parser reads back the same value.
enum YAMLText {
    static func render(_ value: JSONValue) -> String {
        lines(value, indent: 0).joined(separator: "\n") + "\n"
    }

    private static func lines(_ value: JSONValue, indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        switch value {
        case .object(let o) where !o.isEmpty:
            return o.keys.sorted().flatMap { key -> [String] in
                let child = o[key]!
                return isBlock(child) ? [pad + quoted(key) + ":"] + lines(child, indent: indent + 2)
                    : [pad + quoted(key) + ": " + scalar(child)]
            }
        case .array(let a) where !a.isEmpty:
            return a.flatMap { item -> [String] in
                guard isBlock(item) else { return [pad + "- " + scalar(item)] }
                // The item's first line, indented two more, takes the dash in place of its indent.
                var inner = lines(item, indent: indent + 2)
                inner[0] = pad + "- " + String(inner[0].dropFirst(indent + 2))
                return inner
            }
        default:
            return [pad + scalar(value)]
        }
    }

    private static func isBlock(_ value: JSONValue) -> Bool {
        switch value {
        case .object(let o): !o.isEmpty
        case .array(let a): !a.isEmpty
        default: false
        }
    }

    private static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n == n.rounded() && abs(n) < 9e15 ? String(Int64(n)) : "\(n)"
        case .string(let s): quoted(s)
        case .object: "{}"
        case .array: "[]"
        }
    }

    /// JSON's string escapes are YAML's double-quoted ones.
    static func quoted(_ s: String) -> String { JSONText.quoted(s) }
}

/// `text` with spaces after it up to `width` characters.
func padded(_ text: String, to width: Int) -> String {
    text + String(repeating: " ", count: max(0, width - text.count))
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        print(r.enumerated().map { i, c in padded(c, to: widths[i] + 2) }.joined())
    }
}
