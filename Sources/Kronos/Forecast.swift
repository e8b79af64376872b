import Foundation
import KronosEngineTypes

/// The forecast of one series: every sample path, their mean and quantiles, with the future dates.
public struct Forecast: Sendable {
    /// The series' name.
    public let name: String
    /// The future dates, one per step.
    public let dates: [Date]
    /// The mean of the sample paths at every step (the reference implementation's forecast).
    public let mean: [Candle]
    /// Every sample path, [samples][steps].
    public let paths: [[Candle]]
    /// The share of paths whose close is above the history's last close, at every step.
    public let probabilityUp: [Double]
    /// The history's last close (what ``probabilityUp`` compares with).
    public let lastClose: Double
    /// The days the future dates fall on (nil when ``ForecastOptions/futureDates`` gave them).
    public let tradingDays: TradingDays?
    /// What the forecast inferred (the trading days, the window) and warnings worth reading (gaps
    /// in the history, too few samples for a quantile).
    public let notes: [String]
    /// Suspicious input or settings that did not stop the forecast.
    public let warnings: [String]

    /// The q-quantile of the paths at every step and field (0 <= q <= 1), as numpy computes it by
    /// default (linear interpolation between order statistics, Hyndman & Fan type 7).
    ///
    /// Each field is its own quantile: the high of `quantile(0.9)` is the 90 % quantile of the
    /// paths' highs, not the high of one path.
    public func quantile(_ q: Double) -> [Candle] { quantiles([q])[0] }

    /// ``quantile(_:)`` at every level of `levels`, [levels][steps]: each step and field's paths are
    /// gathered and sorted once for all the levels.
    public func quantiles(_ levels: [Double]) -> [[Candle]] {
        for q in levels { precondition((0...1).contains(q), "quantile level \(q) outside 0...1") }
        var values = [[Double]](repeating: [Double](repeating: 0, count: dates.count * 6), count: levels.count)
        var column = [Float](repeating: 0, count: paths.count)
        for t in dates.indices {
            for f in 0..<6 {
                for (j, p) in paths.enumerated() { column[j] = Float(Self.field(p[t], f)) }
                column.sort()
                for (l, q) in levels.enumerated() { values[l][t * 6 + f] = Double(Self.quantile(sorted: column, q)) }
            }
        }
        return values.map { v in
            dates.enumerated().map { t, date in
                Candle(
                    date: date, open: v[t * 6], high: v[t * 6 + 1], low: v[t * 6 + 2], close: v[t * 6 + 3],
                    volume: v[t * 6 + 4],
                    amount: v[t * 6 + 5])
            }
        }
    }

    /// The median path (``quantile(_:)`` at 0.5).
    public var median: [Candle] { quantile(0.5) }

    /// The q-quantile of `v` with linear interpolation between order statistics (numpy's default,
    /// Hyndman & Fan type 7): sort ascending, position h = q·(n - 1) counted from 0, then
    /// x[⌊h⌋] + (h - ⌊h⌋)·(x[⌊h⌋ + 1] - x[⌊h⌋]), computed in Double and rounded to Float once.
    /// (`s` sorted ascending.)
    public static func quantile(sorted s: [Float], _ q: Double) -> Float {
        let h = q * Double(s.count - 1)
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return Float(Double(s[lo]) + (h - Double(lo)) * (Double(s[hi]) - Double(s[lo])))
    }

    static func field(_ c: Candle, _ f: Int) -> Double {
        switch f {
        case 0: return c.open
        case 1: return c.high
        case 2: return c.low
        case 3: return c.close
        case 4: return c.volume ?? 0
        default: return c.amount ?? 0
        }
    }
}
