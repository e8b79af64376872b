// SVG chart of one forecast: the last part of the history as candles, the forecast as candles,
// and (with samples) the 10-90 % band and the median of the close.
import Foundation

public enum ForecastChart {
    /// Renders `series` with up to `historyRows` candles of history.
    public static func svg(_ s: SeriesResult, historyRows: Int = 120, title: String? = nil) -> String {
        let W = 1100.0, H = 560.0, left = 80.0, right = 24.0, top = 48.0, bottom = 64.0
        let h = s.history
        let hist = min(historyRows, h.rows)
        let P = s.timestamps.count
        let n = hist + P
        let histValues = Array(h.values.suffix(hist * 6))
        var lo = Float.infinity, hi = -Float.infinity
        func see(_ v: Float) { lo = min(lo, v); hi = max(hi, v) }
        for t in 0..<hist { see(histValues[t * 6 + 2]); see(histValues[t * 6 + 1]) }
        for t in 0..<P { see(s.mean[t * 6 + 2]); see(s.mean[t * 6 + 1]) }
        for (_, q) in s.quantiles { for t in 0..<P { see(q[t * 6 + 3]) } }
        if hi <= lo { hi = lo + 1 }
        let pad = (hi - lo) * 0.05
        lo -= pad; hi += pad
        let plotW = W - left - right, plotH = H - top - bottom
        let step = plotW / Double(n)
        func x(_ i: Int) -> Double { left + (Double(i) + 0.5) * step }
        func y(_ v: Float) -> Double { top + (Double(hi - v) / Double(hi - lo)) * plotH }
        func f(_ d: Double) -> String { String(format: "%.1f", d) }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(H))" viewBox="0 0 \(Int(W)) \(Int(H))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="#ffffff"/>
        <text x="\(f(left))" y="28" font-size="16" font-weight="bold">\(escape(title ?? "Kronos forecast: \((s.file as NSString).lastPathComponent)"))</text>

        """
        // Price grid and labels.
        for k in 0...5 {
            let v = lo + (hi - lo) * Float(k) / 5
            out += "<line x1=\"\(f(left))\" x2=\"\(f(W - right))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" fill=\"#555\">\(priceLabel(v))</text>\n"
        }
        // Forecast region shading and divider.
        let split = left + Double(hist) * step
        out += "<rect x=\"\(f(split))\" y=\"\(f(top))\" width=\"\(f(W - right - split))\" height=\"\(f(plotH))\" fill=\"#f3f6fb\"/>\n"
        out += "<line x1=\"\(f(split))\" x2=\"\(f(split))\" y1=\"\(f(top))\" y2=\"\(f(top + plotH))\" stroke=\"#8a8a8a\" stroke-dasharray=\"4 3\"/>\n"
        // Quantile band of the close (10-90 %) and median.
        if let p10 = s.quantiles.first(where: { $0.level == 0.1 })?.values, let p90 = s.quantiles.first(where: { $0.level == 0.9 })?.values {
            var pts = (0..<P).map { "\(f(x(hist + $0))),\(f(y(p90[$0 * 6 + 3])))" }
            pts += (0..<P).reversed().map { "\(f(x(hist + $0))),\(f(y(p10[$0 * 6 + 3])))" }
            out += "<polygon points=\"\(pts.joined(separator: " "))\" fill=\"#4a78c2\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
            if let p50 = s.quantiles.first(where: { $0.level == 0.5 })?.values {
                let line = (0..<P).map { "\(f(x(hist + $0))),\(f(y(p50[$0 * 6 + 3])))" }.joined(separator: " ")
                out += "<polyline points=\"\(line)\" fill=\"none\" stroke=\"#4a78c2\" stroke-width=\"1\" stroke-dasharray=\"3 2\"/>\n"
            }
        }
        func candle(_ i: Int, _ o: Float, _ hgh: Float, _ l: Float, _ c: Float, up: String, down: String, opacity: Double) {
            let color = c >= o ? up : down
            let bw = max(1.0, step * 0.6)
            out += "<line x1=\"\(f(x(i)))\" x2=\"\(f(x(i)))\" y1=\"\(f(y(hgh)))\" y2=\"\(f(y(l)))\" stroke=\"\(color)\" stroke-opacity=\"\(opacity)\"/>\n"
            let yt = y(max(o, c)), yb = y(min(o, c))
            out += "<rect x=\"\(f(x(i) - bw / 2))\" y=\"\(f(yt))\" width=\"\(f(bw))\" height=\"\(f(max(1, yb - yt)))\" fill=\"\(color)\" fill-opacity=\"\(opacity)\"/>\n"
        }
        for t in 0..<hist {
            let r = t * 6
            candle(t, histValues[r], histValues[r + 1], histValues[r + 2], histValues[r + 3], up: "#26a269", down: "#c01c28", opacity: 1)
        }
        for t in 0..<P {
            let r = t * 6
            candle(hist + t, s.mean[r], s.mean[r + 1], s.mean[r + 2], s.mean[r + 3], up: "#2f6fd6", down: "#7a3fc0", opacity: 0.85)
        }
        // Time axis: first history row, forecast start, last forecast row.
        let firstLabel = Candles.format(h.times[h.rows - hist], h.format)
        out += "<text x=\"\(f(left))\" y=\"\(f(H - bottom + 20))\" fill=\"#555\">\(escape(firstLabel))</text>\n"
        out += "<text x=\"\(f(split - 4))\" y=\"\(f(top - 6))\" text-anchor=\"end\" fill=\"#555\">forecast from \(escape(s.timestamps.first ?? "")) →</text>\n"
        out += "<text x=\"\(f(W - right))\" y=\"\(f(H - bottom + 20))\" text-anchor=\"end\" fill=\"#555\">\(escape(s.timestamps.last ?? ""))</text>\n"
        let legend = s.quantiles.isEmpty ? "history (green/red) · forecast mean (blue/purple)" :
            "history (green/red) · forecast mean (blue/purple) · close 10–90 % band and median of \(s.s1.count) samples"
        out += "<text x=\"\(f(left))\" y=\"\(f(H - 18))\" fill=\"#333\">\(escape(legend))</text>\n"
        out += "</svg>\n"
        return out
    }

    static func priceLabel(_ v: Float) -> String {
        let a = abs(v)
        if a >= 1000 { return String(format: "%.0f", v) }
        if a >= 1 { return String(format: "%.2f", v) }
        return String(format: "%.4g", v)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
