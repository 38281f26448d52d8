/// "Did you mean …?" for misspelled names: fields of a config object, kinds, CLI verbs.
public enum Spelling {
    /// The candidate nearest to `word` when it is close enough to be a slip of the keyboard:
    /// at most one edit for short words, two from 6 characters, three from 12 (a swap of two
    /// neighbouring letters is one edit). Case is ignored; on a tie the earlier candidate wins.
    public static func suggestion(for word: String, among candidates: [String]) -> String? {
        let allowed = word.count >= 12 ? 3 : (word.count >= 6 ? 2 : 1)
        var best: (candidate: String, distance: Int)?
        for candidate in candidates where candidate != word {
            let d = distance(word, candidate)
            if d <= allowed, d < (best?.distance ?? .max) { best = (candidate, d) }
        }
        return best?.candidate
    }

    /// Edits (insert, delete, substitute, swap of neighbours) that turn `a` into `b`, ignoring
    /// case: the optimal string alignment distance.
    public static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.lowercased()), y = Array(b.lowercased())
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[x.count][y.count]
    }
}
