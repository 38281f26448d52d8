#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import YAML
import Transport

/// Reads a bootstrap file (YAML or JSON) into MeshAPI resources.
public enum BootstrapLoader {
    public static func load(file: String) throws -> Bootstrap {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigError(file: file, path: "", reason: "cannot read file: \(error.plainDescription)")
        }
        return try parse(text, file: file)
    }

    public static func parse(_ text: String, file: String? = nil) throws -> Bootstrap {
        do {
            return try NodeDecoder().decode(Bootstrap.self, from: text)
        } catch let e as DecodingError {
            throw describe(e, file: file)
        } catch let e as YAMLError {
            throw ConfigError(file: file, path: "", reason: "invalid YAML: \(e)")
        }
    }

    static func describe(_ e: DecodingError, file: String?) -> ConfigError {
        func path(_ keys: [CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return String(text.drop { $0 == "." })
        }
        switch e {
        case .keyNotFound(let key, let ctx):
            return ConfigError(file: file, path: path(ctx.codingPath + [key]), reason: "required field is missing")
        case .typeMismatch(let type, let ctx):
            return ConfigError(file: file, path: path(ctx.codingPath), reason: "wrong type, expected \(type)")
        case .valueNotFound(let type, let ctx):
            return ConfigError(file: file, path: path(ctx.codingPath), reason: "missing value, expected \(type)")
        case .dataCorrupted(let ctx):
            if let yaml = ctx.underlyingError as? YAMLError {
                return ConfigError(file: file, path: path(ctx.codingPath), reason: "invalid YAML: \(yaml)")
            }
            return ConfigError(file: file, path: path(ctx.codingPath), reason: ctx.debugDescription)
        @unknown default:
            return ConfigError(file: file, path: "", reason: "\(e)")
        }
    }
}
