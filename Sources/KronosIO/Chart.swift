// SVG chart of one series' forecast, for a trader to read at a glance: a title naming the bundle,
// its type and the settings; the last part of the history as candles, the forecast mean as candles,
// the faint sample paths of the close behind the outer quantile band and the median; the last close
// marked; round price ticks (1-2-5 steps) and dated time ticks; a volume panel; a legend with keys.
import Foundation
import Kronos
import KronosEngineTypes

/// What the chart's title says about the run.
public struct ChartContext: Sendable {
    public var bundle: String
    /// Bundle type (f32, f16, q8, q4).
    public var type: String
    public var samples: Int
    public var seed: UInt64
    public var cache: String
    public init(bundle: String, type: String, samples: Int, seed: UInt64, cache: String) {
        self.bundle = bundle; self.type = type; self.samples = samples; self.seed = seed; self.cache = cache
    }
}

public enum ForecastChart {
    /// Sample paths drawn at most (the band and median summarize the rest).
    public static let maxPaths = 64

    /// Renders `s` with up to `historyRows` candles of history.
    public static func svg(_ s: SeriesResult, context: ChartContext, historyRows: Int = 120) -> String {
        let W = 1200.0, H = 720.0, left = 88.0, right = 96.0, top = 78.0
        let priceH = 430.0, gapH = 26.0, volumeH = 100.0
        let h = s.history
        let hist = min(historyRows, h.rows)
        let P = s.timestamps.count
        let n = hist + P
        let histValues = Array(h.values.suffix(hist * 6))
        let times = Array(h.times.suffix(hist)) + s.futureTimes
        let paths = Array(s.paths.prefix(maxPaths))
        let outer =
            s.quantiles.count >= 2
            ? (lo: s.quantiles.min { $0.level < $1.level }!, hi: s.quantiles.max { $0.level < $1.level }!) : nil
        let median = s.quantiles.first { $0.level == 0.5 }

        // Price range over everything drawn, then round ticks covering it.
        var lo = Double.infinity, hi = -Double.infinity
        func see(_ v: Float) { if v.isFinite { lo = min(lo, Double(v)); hi = max(hi, Double(v)) } }
        for t in 0..<hist { see(histValues[t * 6 + 2]); see(histValues[t * 6 + 1]) }
        for t in 0..<P { see(s.mean[t * 6 + 2]); see(s.mean[t * 6 + 1]) }
        for p in paths { for t in 0..<P { see(p[t * 6 + 3]) } }
        for (_, q) in s.quantiles { for t in 0..<P { see(q[t * 6 + 3]) } }
        if !(hi > lo) { hi = lo.isFinite ? lo + 1 : 1; lo = lo.isFinite ? lo - 1 : 0 }
        let ticks = niceTicks(lo, hi, count: 7)
        lo = min(lo, ticks.first!); hi = max(hi, ticks.last!)

        let plotW = W - left - right
        let step = plotW / Double(n)
        let volumeTop = top + priceH + gapH
        func x(_ i: Int) -> Double { left + (Double(i) + 0.5) * step }
        func y(_ v: Float) -> Double { top + (hi - Double(v)) / (hi - lo) * priceH }
        func f(_ d: Double) -> String { String(format: "%.1f", d) }
        let name = (s.file as NSString).lastPathComponent
        let bundleName = (context.bundle as NSString).lastPathComponent
        let title = "\(name): \(P) steps forecast by \(bundleName) (\(context.type))"
        let subtitle =
            "\(context.samples) sample\(context.samples == 1 ? "" : "s"), seed \(context.seed), cache "
            + "\(context.cache), "
            + "calendar \(s.calendar?.rawValue ?? "from file"), last close \(NumberText.decimal(s.lastClose))"
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(H))" \
            viewBox="0 0 \(Int(W)) \(Int(H))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="\(f(left))" y="28" font-size="17" font-weight="bold" fill="#222">\(escape(title))</text>
            <text x="\(f(left))" y="50" font-size="13" fill="#555">\(escape(subtitle))</text>

            """
        // Price grid and labels (right side too, where the forecast is).
        let tickStep = ticks.count > 1 ? ticks[1] - ticks[0] : 1
        for v in ticks {
            let yy = y(Float(v))
            out +=
                "<line x1=\"\(f(left))\" x2=\"\(f(W - right))\" y1=\"\(f(yy))\" y2=\"\(f(yy))\" stroke=\"#e6e6e6\"/>\n"
            out +=
                "<text x=\"\(f(left - 8))\" y=\"\(f(yy + 4))\" text-anchor=\"end\" "
                + "fill=\"#555\">\(priceLabel(v, step: tickStep))</text>\n"
            out +=
                "<text x=\"\(f(W - right + 8))\" y=\"\(f(yy + 4))\" "
                + "fill=\"#555\">\(priceLabel(v, step: tickStep))</text>\n"
        }
        // Forecast region.
        let split = left + Double(hist) * step
        out +=
            "<rect x=\"\(f(split))\" y=\"\(f(top))\" width=\"\(f(W - right - split))\" height=\"\(f(priceH))\" "
            + "fill=\"#f2f5fb\"/>\n"
        out +=
            "<rect x=\"\(f(split))\" y=\"\(f(volumeTop))\" width=\"\(f(W - right - split))\" height=\"\(f(volumeH))\" "
            + "fill=\"#f2f5fb\"/>\n"
        // Time ticks, dated, at round boundaries.
        for (i, label) in timeTicks(times, format: h.format, maxTicks: 9) {
            out +=
                "<line x1=\"\(f(x(i)))\" x2=\"\(f(x(i)))\" y1=\"\(f(top))\" y2=\"\(f(volumeTop + volumeH))\" "
                + "stroke=\"#efefef\"/>\n"
            out +=
                "<line x1=\"\(f(x(i)))\" x2=\"\(f(x(i)))\" y1=\"\(f(volumeTop + volumeH))\" "
                + "y2=\"\(f(volumeTop + volumeH + 5))\" stroke=\"#888\"/>\n"
            out +=
                "<text x=\"\(f(x(i)))\" y=\"\(f(volumeTop + volumeH + 19))\" text-anchor=\"middle\" "
                + "fill=\"#555\">\(escape(label))</text>\n"
        }
        out +=
            "<line x1=\"\(f(split))\" x2=\"\(f(split))\" y1=\"\(f(top))\" y2=\"\(f(volumeTop + volumeH))\" "
            + "stroke=\"#8a8a8a\" stroke-dasharray=\"4 3\"/>\n"
        out += "<text x=\"\(f(split + 6))\" y=\"\(f(top + priceH - 8))\" fill=\"#666\">forecast →</text>\n"
        // Sample paths of the close, faint, behind everything of the forecast.
        let lastX = x(hist - 1), lastY = y(s.lastClose)
        for p in paths {
            let pts =
                "\(f(lastX)),\(f(lastY)) "
                + (0..<P).map { "\(f(x(hist + $0))),\(f(y(p[$0 * 6 + 3])))" }.joined(separator: " ")
            out +=
                "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"#4a78c2\" stroke-opacity=\"0.16\" "
                + "stroke-width=\"1\"/>\n"
        }
        // Outer quantile band of the close and the median.
        if let outer {
            var pts = (0..<P).map { "\(f(x(hist + $0))),\(f(y(outer.hi.values[$0 * 6 + 3])))" }
            pts += (0..<P).reversed().map { "\(f(x(hist + $0))),\(f(y(outer.lo.values[$0 * 6 + 3])))" }
            out +=
                "<polygon points=\"\(pts.joined(separator: " "))\" fill=\"#4a78c2\" fill-opacity=\"0.16\" "
                + "stroke=\"#4a78c2\" stroke-opacity=\"0.35\" stroke-width=\"0.8\"/>\n"
        }
        if let median {
            let line = (0..<P).map { "\(f(x(hist + $0))),\(f(y(median.values[$0 * 6 + 3])))" }.joined(separator: " ")
            out +=
                "<polyline points=\"\(line)\" fill=\"none\" stroke=\"#1f4e9c\" stroke-width=\"1.4\" "
                + "stroke-dasharray=\"5 3\"/>\n"
        }
        func candle(
            _ i: Int, _ o: Float, _ hgh: Float, _ l: Float, _ c: Float, up: String, down: String, opacity: Double
        ) {
            let color = c >= o ? up : down
            let bw = max(1.0, step * 0.62)
            out +=
                "<line x1=\"\(f(x(i)))\" x2=\"\(f(x(i)))\" y1=\"\(f(y(hgh)))\" y2=\"\(f(y(l)))\" stroke=\"\(color)\" "
                + "stroke-opacity=\"\(opacity)\"/>\n"
            let yt = y(max(o, c)), yb = y(min(o, c))
            out +=
                "<rect x=\"\(f(x(i) - bw / 2))\" y=\"\(f(yt))\" width=\"\(f(bw))\" height=\"\(f(max(1, yb - yt)))\" "
                + "fill=\"\(color)\" fill-opacity=\"\(opacity)\"/>\n"
        }
        for t in 0..<hist {
            let r = t * 6
            candle(
                t, histValues[r], histValues[r + 1], histValues[r + 2], histValues[r + 3], up: "#26a269",
                down: "#c01c28", opacity: 1)
        }
        for t in 0..<P {
            let r = t * 6
            candle(
                hist + t, s.mean[r], s.mean[r + 1], s.mean[r + 2], s.mean[r + 3], up: "#2f6fd6", down: "#7a3fc0",
                opacity: 0.9)
        }
        // Last close: a dashed level across the forecast and its value on the right axis.
        out +=
            "<line x1=\"\(f(lastX))\" x2=\"\(f(W - right))\" y1=\"\(f(lastY))\" y2=\"\(f(lastY))\" stroke=\"#e08a00\" "
            + "stroke-width=\"1\" stroke-dasharray=\"2 2\"/>\n"
        out += "<circle cx=\"\(f(lastX))\" cy=\"\(f(lastY))\" r=\"3.5\" fill=\"#e08a00\"/>\n"
        out +=
            "<rect x=\"\(f(W - right + 2))\" y=\"\(f(lastY - 9))\" width=\"\(f(right - 6))\" height=\"18\" rx=\"3\" "
            + "fill=\"#e08a00\"/>\n"
        out +=
            "<text x=\"\(f(W - right + 8))\" y=\"\(f(lastY + 4))\" fill=\"#fff\" "
            + "font-weight=\"bold\">\(NumberText.decimal(s.lastClose))</text>\n"
        // Volume panel: history bars, forecast mean volume.
        var vmax: Float = 0
        for t in 0..<hist { vmax = max(vmax, histValues[t * 6 + 4]) }
        for t in 0..<P { vmax = max(vmax, s.mean[t * 6 + 4]) }
        out += "<text x=\"\(f(left - 8))\" y=\"\(f(volumeTop + 12))\" text-anchor=\"end\" fill=\"#555\">volume</text>\n"
        if vmax > 0 {
            out +=
                "<text x=\"\(f(left - 8))\" y=\"\(f(volumeTop + 28))\" text-anchor=\"end\" "
                + "fill=\"#888\">\(compact(Double(vmax)))</text>\n"
            func bar(_ i: Int, _ v: Float, _ color: String) {
                let bh = Double(max(0, v) / vmax) * (volumeH - 4)
                out +=
                    "<rect x=\"\(f(x(i) - max(1, step * 0.62) / 2))\" y=\"\(f(volumeTop + volumeH - bh))\" "
                    + "width=\"\(f(max(1, step * 0.62)))\" height=\"\(f(bh))\" fill=\"\(color)\"/>\n"
            }
            for t in 0..<hist {
                bar(t, histValues[t * 6 + 4], histValues[t * 6 + 3] >= histValues[t * 6] ? "#9fd3b0" : "#e4a0a6")
            }
            for t in 0..<P { bar(hist + t, s.mean[t * 6 + 4], "#9db8e6") }
        } else {
            out +=
                "<text x=\"\(f(left + 8))\" y=\"\(f(volumeTop + volumeH / 2))\" fill=\"#888\">no volume in the "
                + "input</text>\n"
        }
        out +=
            "<line x1=\"\(f(left))\" x2=\"\(f(W - right))\" y1=\"\(f(volumeTop + volumeH))\" "
            + "y2=\"\(f(volumeTop + volumeH))\" stroke=\"#bbb\"/>\n"
        // Legend with keys.
        var lx = left
        let ly = H - 22.0
        func key(_ swatch: String, _ label: String) {
            out += swatch.replacingOccurrences(of: "$X", with: f(lx)).replacingOccurrences(of: "$Y", with: f(ly - 10))
                .replacingOccurrences(of: "$M", with: f(lx + 7)).replacingOccurrences(of: "$C", with: f(ly - 4))
                .replacingOccurrences(of: "$E", with: f(lx + 20))
            out += "<text x=\"\(f(lx + 26))\" y=\"\(f(ly))\" fill=\"#333\">\(escape(label))</text>\n"
            lx += 26 + Double(label.count) * 6.6 + 18
        }
        key(
            "<rect x=\"$X\" y=\"$Y\" width=\"7\" height=\"12\" fill=\"#26a269\"/><rect x=\"$M\" y=\"$Y\" width=\"7\" "
                + "height=\"12\" fill=\"#c01c28\"/>\n",
            "history")
        key(
            "<rect x=\"$X\" y=\"$Y\" width=\"7\" height=\"12\" fill=\"#2f6fd6\"/><rect x=\"$M\" y=\"$Y\" width=\"7\" "
                + "height=\"12\" fill=\"#7a3fc0\"/>\n",
            "forecast mean")
        if !paths.isEmpty, s.paths.count > 1 {
            key(
                "<line x1=\"$X\" x2=\"$E\" y1=\"$C\" y2=\"$C\" stroke=\"#4a78c2\" stroke-opacity=\"0.45\"/>\n",
                "\(paths.count)\(s.paths.count > paths.count ? " of \(s.paths.count)" : "") sample paths (close)")
        }
        if let outer {
            key(
                "<rect x=\"$X\" y=\"$Y\" width=\"20\" height=\"12\" fill=\"#4a78c2\" fill-opacity=\"0.25\" "
                    + "stroke=\"#4a78c2\" stroke-opacity=\"0.5\"/>\n",
                "close \(NumberText.percentKey(outer.lo.level))–\(NumberText.percentKey(outer.hi.level)) band")
        }
        if median != nil {
            key(
                "<line x1=\"$X\" x2=\"$E\" y1=\"$C\" y2=\"$C\" stroke=\"#1f4e9c\" stroke-width=\"1.4\" "
                    + "stroke-dasharray=\"5 3\"/>\n",
                "median close")
        }
        key(
            "<line x1=\"$X\" x2=\"$E\" y1=\"$C\" y2=\"$C\" stroke=\"#e08a00\" stroke-dasharray=\"2 2\"/>\n",
            "last close")
        out += "</svg>\n"
        return out
    }

    /// Round ticks (1, 2, 2.5 or 5 × 10^k apart) covering [lo, hi], about `count` of them.
    public static func niceTicks(_ lo: Double, _ hi: Double, count: Int) -> [Double] {
        let raw = (hi - lo) / Double(max(1, count - 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = (lo / step).rounded(.down) * step, last = (hi / step).rounded(.up) * step
        var ticks = [Double](), v = first
        while v <= last + step * 1e-9, ticks.count < 100 {
            ticks.append(abs(v) < step * 1e-9 ? 0 : v); v = first + Double(ticks.count) * step
        }
        return ticks
    }

    /// A tick label with as many decimals as the tick step needs (100000, 2.5, 0.0125).
    static func priceLabel(_ v: Double, step: Double) -> String {
        guard step > 0 else { return abs(v) >= 1000 ? String(format: "%.0f", v) : String(format: "%.4g", v) }
        let decimals =
            (0...8).first { d in
                let x = step * pow(10, Double(d)); return abs(x - x.rounded()) < 1e-6 * max(1, x)
            } ?? 8
        return String(format: "%.\(decimals)f", v)
    }

    /// 1.2M, 830k, 42.
    static func compact(_ v: Double) -> String {
        if v >= 1e9 { return String(format: "%.1fG", v / 1e9) }
        if v >= 1e6 { return String(format: "%.1fM", v / 1e6) }
        if v >= 1e3 { return String(format: "%.1fk", v / 1e3) }
        return String(format: "%.3g", v)
    }

    /// Tick positions (row indices) where the time crosses a round boundary (hours, days, weeks,
    /// months), at most `maxTicks`, with labels: the date, and the time of day for sub-day ticks.
    static func timeTicks(_ times: [Int64], format: TimeFormat, maxTicks: Int) -> [(Int, String)] {
        guard let first = times.first, let last = times.last, last > first else { return [] }
        let candidates: [Int64] = [
            60, 5 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400,
            14 * 86400, 30 * 86400,
            91 * 86400, 365 * 86400,
        ]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        for unit in candidates {
            var ticks = [(Int, String)]()
            var previousBucket: Int64?
            for (i, t) in times.enumerated() {
                let bucket: Int64
                let days = Int((t >= 0 ? t : t - 86399) / 86400)
                let (y, m, _) = CivilDate.date(days: days)
                if unit >= 365 * 86400 {
                    bucket = Int64(y)
                } else if unit >= 91 * 86400 {
                    bucket = Int64(y * 4 + (m - 1) / 3)
                } else if unit >= 30 * 86400 {
                    bucket = Int64(y * 12 + m - 1)
                } else if unit == 7 * 86400 || unit == 14 * 86400 {
                    bucket = Int64((days + 3) / Int(unit / 86400))
                }  // Monday-aligned
                else {
                    bucket = (t >= 0 ? t : t - unit + 1) / unit
                }
                if let p = previousBucket, bucket != p {
                    let (_, mm, d) = CivilDate.date(days: days)
                    let secs = Int(t - Int64(days) * 86400)
                    let label =
                        unit < 86400
                        ? String(format: "%@ %d %02d:%02d", months[mm - 1], d, secs / 3600, (secs / 60) % 60)
                        : unit >= 365 * 86400
                            ? "\(y)" : unit >= 30 * 86400 ? "\(months[mm - 1]) \(y)" : "\(months[mm - 1]) \(d)"
                    ticks.append((i, label))
                }
                previousBucket = bucket
            }
            if ticks.count <= maxTicks && ticks.count >= 2 { return ticks }
            if ticks.count < 2 && unit >= 86400 { return ticks }
        }
        return []
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
