// A backtest report as one SVG (kronos-run backtest --chart): per scored column, a row of three panels.
//   1. CRPS (solid) and MAE (dashed) by horizon step, one colour per forecaster;
//   2. coverage of the central 50 / 80 / 90 % bands per forecaster against the nominal share;
//   3. the PIT histogram per forecaster (10 bins) against the uniform line (calibrated: flat at 10 %).
import Foundation

extension BacktestReport {
    public func svg() -> String {
        let W = 1320.0, head = 78.0, bottom = 70.0, plotH = 322.0, panelW = 370.0, gap = 70.0, left = 70.0
        let rowH = plotH + bottom + (fields.count > 1 ? 28 : 0), H = head + rowH * Double(fields.count)
        let palette = ["#1f4e9c", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b7950b"]
        func color(_ i: Int) -> String { palette[i % palette.count] }
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func number(_ v: Double) -> String {
            let a = abs(v)
            if a >= 1e4 { return String(format: "%.0f", v) }
            if a >= 10 { return String(format: "%.0f", v) }
            if a >= 1 { return String(format: "%.1f", v) }
            return String(format: "%.2g", v)
        }
        /// Round tick values covering [lo, hi]: about `count` of them, at 1, 2 or 5 × 10^k.
        func ticks(_ lo: Double, _ hi: Double, _ count: Int = 5) -> [Double] {
            let raw = max((hi - lo) / Double(count), 1e-12)
            let p = pow(10, floor(log10(raw))), m = raw / p
            let step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p
            var out = [Double](), t = (lo / step).rounded(.up) * step
            while t <= hi + step * 1e-9 { out.append(t); t += step }
            // The last tick at or above hi, so the top of the axis is labelled.
            if let last = out.last, last < hi { out.append(last + step) }
            return out
        }
        let origins = series.reduce(0) { $0 + $1.origins }
        let scored = esc(plan.fields.joined(separator: ", "))
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(H))" \
            viewBox="0 0 \(Int(W)) \(Int(H))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="\(f(left))" y="28" font-size="17" font-weight="bold" fill="#222">\
            Backtest: \(esc(series.map(\.name).joined(separator: ", "))), \(origins) origins, \
            \(plan.steps) steps, \(samples) samples</text>
            <text x="\(f(left))" y="48" fill="#555">lookback \(plan.lookback), scored on \(scored), \
            seed \(seed); baselines: persistence, random walk (log-normal, history's volatility)</text>

            """
        // Legend (forecasters) along the foot.
        var lx = left
        for (i, r) in fields[0].forecasters.enumerated() {
            s += "<rect x=\"\(f(lx))\" y=\"\(f(H - 26))\" width=\"14\" height=\"4\" fill=\"\(color(i))\"/>"
            s += "<text x=\"\(f(lx + 20))\" y=\"\(f(H - 20))\" fill=\"#333\">\(esc(r.name))</text>\n"
            lx += 30 + Double(r.name.count) * 7.5
        }
        for (row, scores) in fields.enumerated() {
            let top = head + rowH * Double(row) + (fields.count > 1 ? 28 : 0), forecasters = scores.forecasters
            if fields.count > 1 {
                s +=
                    "<text x=\"\(f(left))\" y=\"\(f(top - 34))\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">"
                    + "\(esc(scores.field))</text>\n"
            }
            func frame(_ x0: Double, _ title: String) {
                s +=
                    "<text x=\"\(f(x0))\" y=\"\(f(top - 12))\" font-weight=\"bold\" fill=\"#333\">"
                    + "\(esc(title))</text>\n"
                s +=
                    "<rect x=\"\(f(x0))\" y=\"\(f(top))\" width=\"\(f(panelW))\" height=\"\(f(plotH))\" "
                    + "fill=\"none\" stroke=\"#bbb\"/>\n"
            }
            func yAxis(_ x0: Double, _ values: [Double], _ y: (Double) -> Double, _ label: (Double) -> String) {
                for v in values {
                    s +=
                        "<line x1=\"\(f(x0))\" x2=\"\(f(x0 + panelW))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" "
                        + "stroke=\"#eee\"/>\n"
                    s +=
                        "<text x=\"\(f(x0 - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" fill=\"#666\">"
                        + "\(label(v))</text>\n"
                }
            }

            // 1. CRPS and MAE by step.
            let x1 = left, steps = plan.steps
            let maxLoss = forecasters.flatMap { $0.horizons.flatMap { [$0.crps, $0.mae] } }.max() ?? 1
            let yTicks1 = ticks(0, maxLoss)
            let yMax1 = max(yTicks1.last ?? maxLoss, 1e-12)
            func sx(_ h: Int) -> Double { x1 + 10 + (panelW - 20) * (steps > 1 ? Double(h) / Double(steps - 1) : 0.5) }
            func sy1(_ v: Double) -> Double { top + plotH - plotH * v / yMax1 }
            frame(x1, "CRPS (solid) and MAE (dashed) by step")
            yAxis(x1, yTicks1, sy1, number)
            for h in ticks(1, Double(steps), 6) where h >= 1 && Int(h) <= steps {
                let x = sx(Int(h) - 1)
                s +=
                    "<text x=\"\(f(x))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\" fill=\"#666\">"
                    + "\(Int(h))</text>\n"
            }
            s +=
                "<text x=\"\(f(x1 + panelW / 2))\" y=\"\(f(top + plotH + 36))\" text-anchor=\"middle\" fill=\"#555\">"
                + "step ahead</text>\n"
            for (i, r) in forecasters.enumerated() {
                let crps = r.horizons.enumerated().map { "\(f(sx($0.offset))),\(f(sy1($0.element.crps)))" }
                let mae = r.horizons.enumerated().map { "\(f(sx($0.offset))),\(f(sy1($0.element.mae)))" }
                s +=
                    "<polyline points=\"\(crps.joined(separator: " "))\" fill=\"none\" stroke=\"\(color(i))\" "
                    + "stroke-width=\"2\"/>\n"
                s +=
                    "<polyline points=\"\(mae.joined(separator: " "))\" fill=\"none\" stroke=\"\(color(i))\" "
                    + "stroke-width=\"1.2\" stroke-dasharray=\"5 3\"/>\n"
            }

            // Panels 2 and 3 leave persistence out: a point has no band and its PIT is 0 or 1.
            let spread = forecasters.enumerated().filter { $0.element.name != "persistence" }

            // 2. Coverage against nominal.
            let x2 = x1 + panelW + gap
            func sy2(_ v: Double) -> Double { top + plotH - plotH * v }
            frame(x2, "Band coverage against nominal")
            yAxis(x2, [0, 0.2, 0.4, 0.6, 0.8, 1], sy2) { "\(Int(($0 * 100).rounded())) %" }
            let groupW = (panelW - 20) / Double(Tally.bands.count)
            let barW = min(22, (groupW - 16) / Double(max(spread.count, 1)))
            for (b, band) in Tally.bands.enumerated() {
                let g0 = x2 + 10 + groupW * Double(b)
                let bx0 = g0 + (groupW - barW * Double(spread.count)) / 2
                for (slot, (i, r)) in spread.enumerated() {
                    let v = r.overall.coverage[b], x = bx0 + barW * Double(slot)
                    s +=
                        "<rect x=\"\(f(x))\" y=\"\(f(sy2(v)))\" width=\"\(f(barW - 2))\" "
                        + "height=\"\(f(sy2(0) - sy2(v)))\" "
                        + "fill=\"\(color(i))\" fill-opacity=\"0.8\"/>\n"
                }
                s +=
                    "<line x1=\"\(f(g0 + 4))\" x2=\"\(f(g0 + groupW - 4))\" "
                    + "y1=\"\(f(sy2(band)))\" y2=\"\(f(sy2(band)))\" "
                    + "stroke=\"#222\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>\n"
                s +=
                    "<text x=\"\(f(g0 + groupW / 2))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\" "
                    + "fill=\"#666\">"
                    + "\(Int(band * 100)) % band</text>\n"
            }
            s +=
                "<text x=\"\(f(x2 + panelW / 2))\" y=\"\(f(top + plotH + 36))\" text-anchor=\"middle\" fill=\"#555\">"
                + "dashed: nominal share (persistence, a point, has no band)</text>\n"

            // 3. PIT histograms.
            let x3 = x2 + panelW + gap
            let maxShare = max(0.2, spread.flatMap(\.element.overall.pitHistogram).max() ?? 0.2)
            let yTicks3 = ticks(0, maxShare)
            let yMax3 = max(yTicks3.last ?? maxShare, 1e-12)
            func sy3(_ v: Double) -> Double { top + plotH - plotH * v / yMax3 }
            let binW = (panelW - 20) / Double(Tally.pitBins)
            frame(x3, "PIT histogram (flat at 10 %: calibrated)")
            yAxis(x3, yTicks3, sy3) { "\(Int(($0 * 100).rounded())) %" }
            for (i, r) in spread {
                var pts = [String]()
                for (k, v) in r.overall.pitHistogram.enumerated() {
                    let xa = x3 + 10 + binW * Double(k)
                    pts.append("\(f(xa)),\(f(sy3(v)))")
                    pts.append("\(f(xa + binW)),\(f(sy3(v)))")
                }
                s +=
                    "<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(color(i))\" "
                    + "stroke-width=\"2\" stroke-opacity=\"0.85\"/>\n"
            }
            s +=
                "<line x1=\"\(f(x3 + 10))\" x2=\"\(f(x3 + panelW - 10))\" y1=\"\(f(sy3(0.1)))\" y2=\"\(f(sy3(0.1)))\" "
                + "stroke=\"#222\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>\n"
            for k in [0, 5, 10] {
                s +=
                    "<text x=\"\(f(x3 + 10 + binW * Double(k)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\" "
                    + "fill=\"#666\">\(String(format: "%.1f", Double(k) / 10))</text>\n"
            }
            s +=
                "<text x=\"\(f(x3 + panelW / 2))\" y=\"\(f(top + plotH + 36))\" text-anchor=\"middle\" fill=\"#555\">"
                + "probability integral transform of the truth</text>\n"
        }
        s += "</svg>\n"
        return s
    }
}
