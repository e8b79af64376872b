// Numbers as text in one format: the shortest digits that read back to the same Float (Swift's
// round-trip algorithm), written positionally, without an exponent and without a trailing ".0":
// 231066450, 11891512, 0.9, 0.000123. Every CSV the tools write uses it, so a column never mixes
// "2.3106645e+08" with "11891512.0".
public enum NumberText {
    public static func decimal(_ v: Float) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v < 0 ? "-inf" : "inf") }
        var s = Substring(v.description)
        let negative = s.hasPrefix("-")
        if negative { s = s.dropFirst() }
        var exponent = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(s[s.index(after: e)...])!
            s = s[..<e]
        }
        let point = s.firstIndex(of: ".")
        let digits = Array(s.filter { $0 != "." })
        let position = (point.map { s.distance(from: s.startIndex, to: $0) } ?? s.count) + exponent
        var integer: [Character], fraction: [Character]
        if position <= 0 {
            integer = ["0"]; fraction = Array(repeating: "0", count: -position) + digits
        } else if position >= digits.count {
            integer = digits + Array(repeating: "0", count: position - digits.count); fraction = []
        } else {
            integer = Array(digits[..<position]); fraction = Array(digits[position...])
        }
        while integer.count > 1, integer[0] == "0" { integer.removeFirst() }
        while fraction.last == "0" { fraction.removeLast() }
        return (negative ? "-" : "") + String(integer) + (fraction.isEmpty ? "" : "." + String(fraction))
    }

    /// A quantile level as a column suffix: 0.05 -> "p5", 0.025 -> "p2.5", 0.5 -> "p50".
    public static func percentKey(_ level: Double) -> String {
        let pct = (level * 100 * 1e6).rounded() / 1e6
        var s = String(pct)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return "p" + s
    }
}
