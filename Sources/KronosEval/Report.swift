// A backtest report as a reader sees it: a table (forecasters × scores, skill against the baselines),
// the paired comparisons and a plain-language summary; or the whole report as JSON.
import Foundation

extension BacktestReport {
    /// The report as sorted-key JSON (dates ISO 8601): the same study gives the same bytes.
    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }

    /// The table, the comparisons and the summary, for a terminal.
    public func text() -> String {
        var out = ""
        let origins = series.reduce(0) { $0 + $1.origins }
        let spans = series.map { s in
            let d = ISO8601DateFormatter()
            return
                "\(s.name): \(s.origins) origins \(s.firstOrigin.map(d.string) ?? "-") .. "
                + "\(s.lastOrigin.map(d.string) ?? "-")"
        }
        out +=
            "backtest: \(origins) origins, lookback \(plan.lookback), \(plan.steps) steps, \(samples) samples, "
            + "seed \(seed), scored on \(plan.fields.joined(separator: ", "))\n"
        for s in spans { out += "  \(s)\n" }
        for scores in fields {
            if fields.count > 1 { out += "\n== \(scores.field) ==\n" }
            out += scores.text(series: series, steps: plan.steps)
        }
        out += "\n" + summary() + "\n"
        return out
    }

    /// A few sentences per scored column (prefixed with the column when there are several).
    public func summary() -> String {
        fields.map { fields.count > 1 ? "On \($0.field): " + $0.summary() : $0.summary() }.joined(separator: "\n")
    }
}

extension FieldReport {
    /// The table, the CRPS by step, the skill and the comparisons of one column.
    func text(series: [SeriesSpan], steps: Int) -> String {
        func f(_ x: Double, _ digits: Int = 4) -> String {
            let a = abs(x)
            if a != 0 && (a < 1e-3 || a >= 1e6) { return String(format: "%.3e", x) }
            return String(format: "%.\(digits)g", x)
        }
        func pct(_ x: Double) -> String { String(format: "%.1f %%", 100 * x) }
        var out = ""
        let header = [
            "forecaster", "MAE", "RMSE", "MAPE", "MASE", "hit rate", "CRPS", "wQL", "cov 50", "cov 80", "cov 90",
            "PIT dist",
        ]
        var rows = [header]
        for r in forecasters {
            let o = r.overall
            rows.append([
                // (The baselines' point forecast is the last value: no direction to score.)
                r.name, f(o.mae), f(o.rmse), pct(o.mape), f(o.mase, 3), r.kind == "baseline" ? "-" : pct(o.hitRate),
                f(o.crps), f(o.weightedQuantileLoss, 3),
                pct(o.coverage[0]), pct(o.coverage[1]), pct(o.coverage[2]), f(o.pitDistance, 3),
            ])
        }
        /// Rows as aligned columns (names left, numbers right), a rule under the first when asked.
        func render(_ rows: [[String]], rule: Bool) -> String {
            let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
            var text = "\n"
            for (i, row) in rows.enumerated() {
                text +=
                    row.enumerated().map { c, cell in
                        c == 0
                            ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                            : String(repeating: " ", count: widths[c] - cell.count) + cell
                    }.joined(separator: "  ") + "\n"
                if i == 0 && rule {
                    text += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
                }
            }
            return text
        }
        out += render(rows, rule: true)
        // CRPS at a few steps ahead (every step is in the JSON and the chart).
        let shown = Array(Set([1, max(1, steps / 4), max(1, steps / 2), steps])).sorted()
        var byStep = [["CRPS by step"] + shown.map { "h=\($0)" }]
        for r in forecasters { byStep.append([r.name] + shown.map { f(r.horizons[$0 - 1].crps) }) }
        out += render(byStep, rule: false)
        let baselines = forecasters.filter { $0.kind == "baseline" }
        let bundles = forecasters.filter { $0.kind == "bundle" }
        if !bundles.isEmpty {
            out += "\nskill (1 - bundle / baseline; > 0: better than the baseline)\n"
            for b in bundles {
                for base in baselines {
                    out +=
                        "  \(b.name) vs \(base.name): CRPS \(pct(1 - b.overall.crps / base.overall.crps)), "
                        + "MAE \(pct(1 - b.overall.mae / base.overall.mae))"
                    if let g = geometricMeanRatios["\(b.name) / \(base.name) CRPS"], series.count > 1 {
                        out += " (geometric mean of the \(series.count) series' CRPS ratios \(f(g, 3)))"
                    }
                    out += "\n"
                }
            }
        }
        if !comparisons.isEmpty {
            out +=
                "\ncomparisons (Diebold-Mariano, Newey-West lag \(comparisons.first?.test?.lag ?? 0), per-origin mean "
                + "loss)\n"
            for c in comparisons { out += "  \(c.sentence)\n" }
        }
        return out
    }

    /// A few sentences: which forecaster is best on CRPS, whether each bundle beats the baselines
    /// significantly, and how honest its 80 % band is.
    public func summary() -> String {
        var lines = [String]()
        if let best = forecasters.min(by: { $0.overall.crps < $1.overall.crps }) {
            lines.append("Lowest CRPS: \(best.name).")
        }
        for b in forecasters where b.kind == "bundle" {
            for base in ["persistence", "random walk"] {
                guard let c = comparisons.first(where: { $0.a == b.name && $0.b == base && $0.loss == "CRPS" })
                else { continue }
                let verdict =
                    c.significant
                    ? (c.relative < 0 ? "better than" : "worse than") : "not distinguishable from"
                lines.append(
                    "\(b.name) is \(verdict) \(base) on CRPS (\(String(format: "%+.1f %%", 100 * c.relative))).")
            }
            let cov = b.overall.coverage[1]
            lines.append(
                "\(b.name)'s 80 % band holds the truth \(String(format: "%.0f %%", 100 * cov)) of the time"
                    + (abs(cov - 0.8) <= 0.05 ? " (about right)." : cov < 0.8 ? " (too narrow)." : " (too wide)."))
        }
        return lines.joined(separator: " ")
    }
}
