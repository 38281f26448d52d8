/// Reads samples of chosen families from Prometheus text (format 0.0.4), as the proxies'
/// `/stats/prometheus` writes them. Lines of other families are skipped unparsed.
enum ExpositionReader {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Samples whose name is in `names` (sample names: `x_bucket`, not the family `x`).
    /// A malformed line is skipped.
    static func samples(_ text: String, names: Set<String>) -> [Sample] {
        var out: [Sample] = []
        for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
            guard let first = line.first, first != UInt8(ascii: "#") else { continue }
            let nameEnd = line.firstIndex { $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: " ") } ?? line.endIndex
            guard let name = String(line[line.startIndex..<nameEnd]), names.contains(name) else { continue }
            if let sample = parse(name: name, rest: line[nameEnd...]) { out.append(sample) }
        }
        return out
    }

    private static func parse(name: String, rest: Substring.UTF8View.SubSequence) -> Sample? {
        var labels: [String: String] = [:]
        var i = rest.startIndex
        if i < rest.endIndex, rest[i] == UInt8(ascii: "{") {
            i = rest.index(after: i)
            while i < rest.endIndex, rest[i] != UInt8(ascii: "}") {
                if rest[i] == UInt8(ascii: ",") || rest[i] == UInt8(ascii: " ") { i = rest.index(after: i); continue }
                guard let eq = rest[i...].firstIndex(of: UInt8(ascii: "=")),
                      rest.index(after: eq) < rest.endIndex, rest[rest.index(after: eq)] == UInt8(ascii: "\"") else { return nil }
                let key = String(rest[i..<eq]) ?? ""
                var value: [UInt8] = []
                var j = rest.index(eq, offsetBy: 2)
                var closed = false
                while j < rest.endIndex {
                    let c = rest[j]
                    if c == UInt8(ascii: "\"") { closed = true; break }
                    if c == UInt8(ascii: "\\"), rest.index(after: j) < rest.endIndex {
                        j = rest.index(after: j)
                        value.append(rest[j] == UInt8(ascii: "n") ? UInt8(ascii: "\n") : rest[j])
                    } else {
                        value.append(c)
                    }
                    j = rest.index(after: j)
                }
                guard closed else { return nil }
                labels[key] = String(decoding: value, as: UTF8.self)
                i = rest.index(after: j)
            }
            guard i < rest.endIndex else { return nil }
            i = rest.index(after: i)
        }
        let fields = rest[i...].split(separator: UInt8(ascii: " "))
        guard let first = fields.first, let text = String(first), let value = Double(text) else { return nil }
        return Sample(name: name, labels: labels, value: value)
    }
}
