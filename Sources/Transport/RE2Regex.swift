internal import CRE2

/// Why RE2 refused a pattern (or a rewrite string). `description` is a whole sentence that
/// names the pattern; callers prefix it with the config field path.
public struct RE2Error: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Not RE2 syntax (includes backreferences, lookaround, possessive quantifiers).
        case invalid
        /// Its program is bigger than the limit (`programSize` nil: bigger than RE2's own
        /// memory budget, so it did not even compile).
        case tooComplex(programSize: Int?, limit: Int)
        /// A rewrite string that names a group the pattern lacks, or has a bad `\` escape.
        case invalidRewrite
    }

    public let pattern: String
    public let kind: Kind
    /// RE2's own reason, with a hint for constructs backtracking engines have and RE2 has not.
    public let reason: String

    public var description: String {
        switch kind {
        case .invalid: "invalid regex \"\(pattern)\": \(reason)"
        case .tooComplex: "regex \"\(pattern)\" is too complex: \(reason)"
        case .invalidRewrite: "invalid rewrite for regex \"\(pattern)\": \(reason)"
        }
    }
}

/// A regular expression compiled by RE2, which matches in time linear in the input, whatever
/// the pattern: every regex that comes from configuration goes through this type, never
/// through a backtracking engine (Swift's `Regex`, `NSRegularExpression`).
///
/// Matching is Envoy's `safe_regex`: `wholeMatch` is RE2::FullMatch (the pattern must cover
/// the whole text, as if wrapped in `^(?:…)$`), `partialMatch` is RE2::PartialMatch.
///
/// Sendable: the RE2 object is created in `init`, never mutated afterwards, and freed in
/// `deinit`; RE2 documents a compiled RE2 as safe to match from many threads at once (its
/// lazily built DFA caches are guarded internally). The compiler cannot see any of that
/// through the opaque pointer, hence `@unchecked`.
public final class RE2Regex: @unchecked Sendable {
    /// Envoy's default limit on a regex's program size (`re2.max_program_size.error_level`).
    public static let defaultMaxProgramSize = 100

    public let pattern: String
    /// RE2's estimate of the compiled program's cost, as Envoy compares with its limit.
    public let programSize: Int
    public let captureGroupCount: Int
    private let handle: OpaquePointer

    /// Compiles `pattern` (RE2 syntax). Refuses what RE2 refuses, and a program larger than
    /// `maxProgramSize` (as Envoy does: a size equal to the limit is accepted).
    public init(_ pattern: String, maxProgramSize: Int = RE2Regex.defaultMaxProgramSize,
                caseSensitive: Bool = true) throws(RE2Error) {
        var options = cre2_default_options()
        options.case_sensitive = caseSensitive ? 1 : 0
        let compiled: OpaquePointer? = Self.withBytes(pattern) { cre2_compile($0, $1, &options) }
        guard let compiled else {
            throw RE2Error(pattern: pattern, kind: .invalid, reason: "out of memory compiling the pattern")
        }
        guard cre2_ok(compiled) != 0 else {
            let tooLarge = cre2_error_is_too_large(compiled) != 0
            let error = String(cString: cre2_error(compiled))
            let arg = String(cString: cre2_error_arg(compiled))
            cre2_free(compiled)
            if tooLarge {
                throw RE2Error(pattern: pattern, kind: .tooComplex(programSize: nil, limit: maxProgramSize),
                               reason: "\(error) (RE2's memory budget for one program exceeded)")
            }
            throw RE2Error(pattern: pattern, kind: .invalid, reason: Self.explain(error, arg: arg, in: pattern))
        }
        let size = Int(cre2_program_size(compiled))
        guard size <= maxProgramSize else {
            cre2_free(compiled)
            throw RE2Error(pattern: pattern, kind: .tooComplex(programSize: size, limit: maxProgramSize),
                           reason: "RE2 program size \(size) exceeds the maximum program size of \(maxProgramSize)")
        }
        self.pattern = pattern
        self.programSize = size
        self.captureGroupCount = Int(cre2_capture_groups(compiled))
        self.handle = compiled
    }

    deinit { cre2_free(handle) }

    /// True when the pattern matches all of `text`.
    public func wholeMatch(_ text: some StringProtocol) -> Bool {
        Self.withBytes(text) { cre2_full_match(handle, $0, $1) } != 0
    }

    /// True when the pattern matches somewhere in `text` (anchor with `^`/`$` to pin it).
    public func partialMatch(_ text: some StringProtocol) -> Bool {
        Self.withBytes(text) { cre2_partial_match(handle, $0, $1) } != 0
    }

    /// Refuses a rewrite string `replaceAll` could not apply: `\0`…`\9` name the whole match
    /// and its groups, `\\` is a backslash, any other `\` is an error.
    public func checkRewrite(_ rewrite: String) throws(RE2Error) {
        guard let error = Self.withBytes(rewrite, { cre2_check_rewrite(handle, $0, $1) }) else { return }
        defer { cre2_free_string(error) }
        throw RE2Error(pattern: pattern, kind: .invalidRewrite, reason: String(cString: error))
    }

    /// Every non-overlapping match in `text` replaced by `rewrite` (RE2::GlobalReplace; `\1` is
    /// group 1). A rewrite that `checkRewrite` refuses leaves the text unchanged.
    public func replaceAll(in text: String, with rewrite: String) -> String {
        Self.withBytes(text) { textBytes, textCount in
            Self.withBytes(rewrite) { rewriteBytes, rewriteCount in
                var length = 0
                var replacements: Int32 = 0
                guard let out = cre2_global_replace(handle, textBytes, textCount, rewriteBytes, rewriteCount,
                                                    &length, &replacements) else { return text }
                defer { cre2_free_string(out) }
                if replacements == 0 { return text }
                return out.withMemoryRebound(to: UInt8.self, capacity: length) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
                }
            }
        }
    }

    // MARK: private

    /// The UTF-8 bytes of `text`, without a copy when the string is native.
    private static func withBytes<R>(_ text: some StringProtocol, _ body: (UnsafePointer<CChar>?, Int) -> R) -> R {
        let direct = text.utf8.withContiguousStorageIfAvailable { bytes in
            bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress, $0.count) }
        }
        if let direct { return direct }
        let copy = Array(text.utf8)
        return copy.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress, $0.count) }
        }
    }

    /// RE2's reason, plus what to do when the pattern uses a construct RE2 leaves out on purpose.
    private static func explain(_ error: String, arg: String, in pattern: String) -> String {
        let hint: String?
        switch arg {
        case "\\1", "\\2", "\\3", "\\4", "\\5", "\\6", "\\7", "\\8", "\\9", "\\k":
            hint = "backreferences are not supported"
        case "(?P":
            hint = pattern.contains("(?P=") ? "backreferences are not supported" : nil
        case "(?=", "(?!":
            hint = "lookahead is not supported"
        case "(?<":
            hint = pattern.contains("(?<=") || pattern.contains("(?<!") ? "lookbehind is not supported"
                : "write a named group as (?P<name>...)"
        case "(?>":
            hint = "atomic groups are not supported"
        case "++", "*+", "?+", "}+":
            hint = "possessive quantifiers are not supported"
        default:
            hint = nil
        }
        guard let hint else { return error }
        return "\(error) (\(hint): meshd uses RE2 syntax, which matches in linear time)"
    }
}
