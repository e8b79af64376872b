// Walk-forward evaluation (kronos-run backtest): rolling forecast origins over a series, each an
// ordinary forecast of the façade from the rows before it, scored against the rows after it, beside
// two baselines on the same origins. Results stream into per-horizon tallies: memory is bounded by one
// origin's forecast, not by the number of origins.
import Foundation
import Kronos
import KronosEngineTypes

/// Which origins a backtest takes and what each forecasts.
public struct BacktestPlan: Sendable, Equatable, Codable {
    /// Candles of history before each origin (the forecast's lookback).
    public var lookback: Int
    /// Steps forecast from each origin (each needs that many candles of truth after it).
    public var steps: Int
    /// Candles between consecutive origins (ignored when `origins` is set).
    public var stride: Int = 1
    /// Evenly spaced origins over the eligible span instead of a stride.
    public var origins: Int?
    /// The columns scored, each on its own: open, high, low, close (default), volume, amount.
    public var fields: [String] = ["close"]
    /// Only origins (the first forecast candle's date) from / to these dates, inclusive.
    public var from: Date?
    public var to: Date?

    public init(
        lookback: Int, steps: Int, stride: Int = 1, origins: Int? = nil, fields: [String] = ["close"],
        from: Date? = nil, to: Date? = nil
    ) {
        self.lookback = lookback
        self.steps = steps
        self.stride = stride
        self.origins = origins
        self.fields = fields
        self.from = from
        self.to = to
    }

    /// The origins of a series whose candles have these `dates`: indices o of the first forecast
    /// candle, with `lookback` candles before o, `steps` from o on, and a date within from / to.
    public func originIndices(dates: [Date]) -> [Int] {
        var first = lookback, last = dates.count - steps
        guard last >= first else { return [] }
        if let from { while first <= last && dates[first] < from { first += 1 } }
        if let to { while last >= first && dates[last] > to { last -= 1 } }
        return originIndices(first: first, last: last)
    }

    /// The origins of a series of `count` candles (no date limits).
    public func originIndices(count: Int) -> [Int] { originIndices(first: lookback, last: count - steps) }

    func originIndices(first: Int, last: Int) -> [Int] {
        guard lookback >= 1, steps >= 1, last >= first else { return [] }
        if let n = origins, n >= 1 {
            if n == 1 || last == first { return [last] }
            let span = Double(last - first)
            var out = [Int]()
            for i in 0..<n {
                let o = first + Int((Double(i) * span / Double(n - 1)).rounded())
                if out.last != o { out.append(o) }
            }
            return out
        }
        return Array(Swift.stride(from: first, through: last, by: max(1, stride)))
    }
}

/// The seed of one origin's forecast: derived from the study's seed, the series' name and the origin's
/// date only (SplitMix64 over their bits), so every bundle of a comparison draws the same random
/// numbers at the same origin (common random numbers), whatever the batching or sharding.
public func originSeed(_ seed: UInt64, series: String, date: Date) -> UInt64 {
    func mix(_ z: UInt64) -> UInt64 {
        var state = z
        return KronosRNG.splitMix64(&state)
    }
    var h = mix(seed)
    for byte in series.utf8 { h = mix(h ^ UInt64(byte)) }
    return mix(h ^ UInt64(bitPattern: Int64(date.timeIntervalSince1970.rounded())))
}

/// Per-horizon sums of one forecaster's scores over origins (divided out in `HorizonScores`).
public struct Tally: Sendable, Equatable, Codable {
    public static let quantileLevels: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    /// Central bands whose coverage is counted: 50, 80 and 90 %.
    public static let bands: [Double] = [0.5, 0.8, 0.9]
    public static let pitBins = 10

    public var count = 0
    public var absoluteError = 0.0, squaredError = 0.0, absolutePercentError = 0.0, scaledError = 0.0
    public var medianAbsoluteError = 0.0
    public var hits = 0, directional = 0
    public var crps = 0.0
    /// Σ pinball loss per level of `quantileLevels`, and Σ |truth| (weighted quantile loss).
    public var pinball = [Double](repeating: 0, count: Tally.quantileLevels.count)
    public var absoluteTruth = 0.0
    /// Truth inside the central band of each of `bands`.
    public var covered = [Int](repeating: 0, count: Tally.bands.count)
    public var pit = [Int](repeating: 0, count: Tally.pitBins)

    public init() {}

    mutating func add(_ o: Tally) {
        count += o.count
        absoluteError += o.absoluteError; squaredError += o.squaredError
        absolutePercentError += o.absolutePercentError; scaledError += o.scaledError
        medianAbsoluteError += o.medianAbsoluteError
        hits += o.hits; directional += o.directional; crps += o.crps
        for i in pinball.indices { pinball[i] += o.pinball[i] }
        absoluteTruth += o.absoluteTruth
        for i in covered.indices { covered[i] += o.covered[i] }
        for i in pit.indices { pit[i] += o.pit[i] }
    }
}

/// A forecast distribution at one horizon step, as the scores need it.
protocol StepDistribution {
    var point: Double { get }
    var median: Double { get }
    func crps(_ y: Double) -> Double
    func quantile(_ level: Double) -> Double
    func pit(_ y: Double) -> Double
}

/// Sample paths' values at one step (sorted).
struct Ensemble: StepDistribution {
    let sorted: [Double]
    let point: Double  // the mean path's value (the forecast's own mean)
    var median: Double { Scores.quantile(sorted: sorted, level: 0.5) }
    func crps(_ y: Double) -> Double { Scores.crps(sorted: sorted, outcome: y) }
    func quantile(_ level: Double) -> Double { Scores.quantile(sorted: sorted, level: level) }
    func pit(_ y: Double) -> Double { Scores.pit(sorted: sorted, outcome: y) }
}

/// Persistence: the last value, with certainty (its CRPS is its absolute error).
struct Persistence: StepDistribution {
    let last: Double
    var point: Double { last }
    var median: Double { last }
    func crps(_ y: Double) -> Double { abs(y - last) }
    func quantile(_ level: Double) -> Double { last }
    func pit(_ y: Double) -> Double { y > last ? 1 : y < last ? 0 : 0.5 }
}

/// A random walk in log prices: ln value_h ~ N(ln last, h σ²), σ the standard deviation of the
/// context's one-step log changes (no drift). Its point forecast is the last value (the median).
struct RandomWalk: StepDistribution {
    let last: Double, sigma: Double
    var mu: Double { log(last) }
    var point: Double { last }
    var median: Double { last }
    func crps(_ y: Double) -> Double { Scores.logNormalCRPS(mu: mu, sigma: sigma, outcome: y) }
    func quantile(_ level: Double) -> Double {
        guard sigma > 0, level > 0, level < 1 else { return level <= 0 && sigma > 0 ? 0 : last }
        return exp(mu + sigma * Scores.inversePhi(level))
    }
    func pit(_ y: Double) -> Double {
        guard sigma > 0 else { return y > last ? 1 : y < last ? 0 : 0.5 }
        return y <= 0 ? 0 : Scores.Phi((log(y) - mu) / sigma)
    }
}

extension Tally {
    /// Adds one (origin, step): the distribution's scores for truth y, with `last` the origin's last
    /// value and `scale` the origin's one-step naive MAE (MASE's denominator; 0 skips it).
    mutating func record(_ d: some StepDistribution, truth y: Double, last: Double, scale: Double) {
        count += 1
        let e = d.point - y
        absoluteError += abs(e); squaredError += e * e
        if y != 0 { absolutePercentError += abs(e / y) }
        if scale > 0 { scaledError += abs(e) / scale }
        medianAbsoluteError += abs(d.median - y)
        if y != last {
            directional += 1
            if (d.point - last) * (y - last) > 0 { hits += 1 }
        }
        crps += d.crps(y)
        for (i, level) in Tally.quantileLevels.enumerated() {
            pinball[i] += Scores.quantileLoss(d.quantile(level), outcome: y, level: level)
        }
        absoluteTruth += abs(y)
        for (i, band) in Tally.bands.enumerated() {
            let lo = d.quantile((1 - band) / 2), hi = d.quantile((1 + band) / 2)
            if y >= lo && y <= hi { covered[i] += 1 }
        }
        pit[min(Tally.pitBins - 1, Int(d.pit(y) * Double(Tally.pitBins)))] += 1
    }
}

/// Scores of one forecaster from its tally.
public struct HorizonScores: Sendable, Equatable, Codable {
    public let count: Int
    public let mae: Double, rmse: Double, mape: Double, mase: Double, medianMAE: Double
    /// Share of steps whose direction from the last value the point forecast got right (steps where
    /// the truth equals the last value are not counted).
    public let hitRate: Double
    public let crps: Double
    /// Σ pinball over levels 0.1 ... 0.9, times 2, over Σ |truth| (GluonTS's mean weighted quantile loss).
    public let weightedQuantileLoss: Double
    /// Coverage of the central 50, 80, 90 % bands.
    public let coverage: [Double]
    /// PIT histogram (10 bins, shares) and its total variation distance from uniform (0: calibrated).
    public let pitHistogram: [Double]
    public let pitDistance: Double

    public init(_ t: Tally) {
        let n = Double(max(t.count, 1))
        count = t.count
        mae = t.absoluteError / n
        rmse = (t.squaredError / n).squareRoot()
        mape = t.absolutePercentError / n
        mase = t.scaledError / n
        medianMAE = t.medianAbsoluteError / n
        hitRate = t.directional > 0 ? Double(t.hits) / Double(t.directional) : 0
        crps = t.crps / n
        weightedQuantileLoss =
            t.absoluteTruth > 0 ? 2 * t.pinball.reduce(0, +) / Double(t.pinball.count) / t.absoluteTruth : 0
        coverage = t.covered.map { Double($0) / n }
        pitHistogram = t.pit.map { Double($0) / n }
        pitDistance = 0.5 * pitHistogram.reduce(0) { $0 + abs($1 - 1 / Double(Tally.pitBins)) }
    }
}

/// One forecaster's results: per horizon step, overall (every step pooled), and per series overall.
public struct ForecasterReport: Sendable, Equatable, Codable {
    public let name: String
    /// "bundle" or "baseline".
    public let kind: String
    public let horizons: [HorizonScores]
    public let overall: HorizonScores
    public let perSeries: [String: HorizonScores]
}

/// A paired comparison of two forecasters on the same origins (Diebold-Mariano on the per-origin
/// mean over steps of the loss). `relative`: the mean difference over B's mean loss.
public struct Comparison: Sendable, Equatable, Codable {
    public let a: String, b: String, loss: String
    public let meanA: Double, meanB: Double
    public let relative: Double, relativeLower95: Double, relativeUpper95: Double
    public let test: DieboldMariano?
    public var significant: Bool { (test?.pValue ?? 1) < 0.05 }

    /// "q4 vs f32: CRPS +0.6 % (95 % CI -0.4 .. +1.6 %), not significant".
    public var sentence: String {
        func pct(_ x: Double) -> String { String(format: "%+.1f %%", 100 * x) }
        guard test != nil else { return "\(a) vs \(b): \(loss) \(pct(relative)) (no variation to test)" }
        return "\(a) vs \(b): \(loss) \(pct(relative)) (95 % CI \(pct(relativeLower95)) .. \(pct(relativeUpper95))), "
            + (significant ? "significant (p = \(String(format: "%.2g", test!.pValue)))" : "not significant")
    }
}

public struct SeriesSpan: Sendable, Equatable, Codable {
    public let name: String
    public let candles: Int
    public let origins: Int
    public let firstOrigin: Date?
    public let lastOrigin: Date?
}

public struct BacktestReport: Sendable, Equatable, Codable {
    public let plan: BacktestPlan
    public let samples: Int
    public let seed: UInt64
    public let series: [SeriesSpan]
    /// The scores of each column of the plan, in its order.
    public let fields: [FieldReport]
}

/// Every forecaster's scores on one column, the paired comparisons and the ratios to the baselines.
public struct FieldReport: Sendable, Equatable, Codable {
    /// The scored column (close, volume, ...).
    public let field: String
    public let forecasters: [ForecasterReport]
    public let comparisons: [Comparison]
    /// Geometric mean over series of each bundle's CRPS and MAE over each baseline's (< 1: better).
    public let geometricMeanRatios: [String: Double]
}

/// Runs a plan over series with several bundles and the two baselines.
public struct Backtest {
    public let plan: BacktestPlan
    /// Every forecast's settings; `seed` is replaced per origin (originSeed), `futureDates` by the
    /// truth's dates.
    public let options: ForecastOptions
    /// Origins of one series forecast together as one batch (at most a block's, and at most
    /// KronosModel.maxBatch paths): larger batches read the weights once for more rows per step;
    /// the results do not depend on it. Each path holds its own key / value cache, so memory grows
    /// with it (Backtest.defaultBatch).
    public var originsPerBatch: Int

    public init(plan: BacktestPlan, options: ForecastOptions, originsPerBatch: Int? = nil) {
        self.plan = plan
        self.options = options
        self.originsPerBatch = originsPerBatch ?? Backtest.defaultBatch(samples: options.samples)
    }

    /// Origins per batch when none is asked for: as many as keep a batch within 128 paths
    /// (origins x samples), at least one, at most a block's (BENCHMARKS.md, backtest: the gain
    /// levels off there while memory keeps growing).
    public static func defaultBatch(samples: Int) -> Int { min(blockSize, max(1, 128 / max(1, samples))) }

    /// The fields a plan may score: the CSV reader's columns (open, high, low, close, volume, amount).
    static let fields = Candles.columns

    static func value(_ c: Candle, _ field: String) -> Double {
        switch field {
        case "open": c.open
        case "high": c.high
        case "low": c.low
        case "volume": c.volume ?? 0
        case "amount": c.amount ?? 0
        default: c.close
        }
    }

    /// The forecast at origin o of `series` (its `candles`): from candles o - lookback ..< o only,
    /// with the truth's dates as future dates and the origin's own seed.
    public func forecast(_ model: KronosModel, _ series: CandleSeries, candles: [Candle], origin o: Int)
        throws(KronosError) -> Forecast
    {
        try forecast(model, series, candles: candles, origins: [o])[0]
    }

    /// The forecasts at origins `os` of one series as one batch: each from its own context and with
    /// its own random stream (ForecastOptions.seriesSeeds), so each is the forecast its origin gets
    /// alone, bit for bit.
    public func forecast(_ model: KronosModel, _ series: CandleSeries, candles: [Candle], origins os: [Int])
        throws(KronosError) -> [Forecast]
    {
        var o2 = options
        o2.seriesSeeds = os.map { originSeed(options.seed, series: series.name, date: candles[$0].date) }
        return try model.forecastSynchronously(
            os.map { series.candles(($0 - plan.lookback)..<$0) }, steps: plan.steps, options: o2,
            futureDates: os.map { candles[$0..<($0 + plan.steps)].map(\.date) })
    }

    /// Origins per block: the unit of sharding and of summation. Every sum of the report is taken
    /// within a block in origin order, then over blocks in block order, so a sharded study merges
    /// to the same bits as an unsharded one.
    public static let blockSize = 16

    /// Scores every bundle and the baselines at every origin of every series: the report.
    /// `progress(done, total)` after each batch, counting forecasts (origins × bundles).
    public func run(
        _ models: [(name: String, model: KronosModel)], series: [CandleSeries],
        progress: ((Int, Int) -> Void)? = nil
    ) throws(KronosError) -> BacktestReport {
        try BacktestReport(merging: [runShard(models, series: series, shard: 1, of: 1, progress: progress)])
    }

    /// The origins of blocks k - 1, k - 1 + n, k - 1 + 2n, ... (shard k of n): a partial result that
    /// `BacktestReport(merging:)` combines with the other shards'.
    public func runShard(
        _ models: [(name: String, model: KronosModel)], series: [CandleSeries], shard k: Int, of n: Int,
        perOrigin: ((OriginRow) -> Void)? = nil, progress: ((Int, Int) -> Void)? = nil
    ) throws(KronosError) -> BacktestPartial {
        guard n >= 1, k >= 1, k <= n else { throw .invalidOptions("shard \(k)/\(n): expected 1 <= K <= N") }
        guard !plan.fields.isEmpty, Set(plan.fields).count == plan.fields.count else {
            throw .invalidOptions("columns \(plan.fields): expected one or more, each once")
        }
        for field in plan.fields where !Backtest.fields.contains(field) {
            throw .invalidOptions("column \(field): expected one of \(Backtest.fields.joined(separator: ", "))")
        }
        guard plan.lookback >= 2, plan.steps >= 1 else {
            throw .invalidOptions(
                "lookback must be at least 2 and steps at least 1, found \(plan.lookback), \(plan.steps)")
        }
        let names = models.map(\.name) + Backtest.baselines
        guard Set(names).count == names.count else { throw .invalidOptions("bundle names must differ: \(names)") }
        let steps = plan.steps
        let candlesOf = series.map(\.candles)
        let plans = candlesOf.map { plan.originIndices(dates: $0.map(\.date)) }
        // Every origin of the study in order (series, then origin), and the blocks this shard runs.
        let all = plans.enumerated().flatMap { s, origins in origins.map { (series: s, origin: $0) } }
        guard !all.isEmpty else {
            throw .invalidInput(
                "no origin: each needs \(plan.lookback) candles before it and \(steps) after "
                    + (plan.from != nil || plan.to != nil ? "and a date within the from / to limits " : "")
                    + "(series of \(series.map(\.count)) candles)")
        }
        let blockCount = (all.count + Backtest.blockSize - 1) / Backtest.blockSize
        let mine = Array(Swift.stride(from: k - 1, to: blockCount, by: n))
        let total =
            models.count * mine.reduce(0) { $0 + min(Backtest.blockSize, all.count - $1 * Backtest.blockSize) }
        // Per series, per scored column: its values.
        let valuesOf = candlesOf.map { candles in plan.fields.map { f in candles.map { Backtest.value($0, f) } } }
        let spans = zip(series, plans).enumerated().map { i, sp in
            SeriesSpan(
                name: sp.0.name, candles: sp.0.count, origins: sp.1.count,
                firstOrigin: sp.1.first.map { candlesOf[i][$0].date },
                lastOrigin: sp.1.last.map { candlesOf[i][$0].date })
        }
        var blocks = [BlockResult](), done = 0
        let perBatch = max(
            1, min(originsPerBatch, Backtest.blockSize, EngineLimits.maxBatch / max(1, options.samples)))
        for b in mine {
            var block = BlockResult(block: b, names: names, steps: steps, fields: plan.fields.count)
            let members = Array((b * Backtest.blockSize)..<min(all.count, (b + 1) * Backtest.blockSize))
            // Every bundle's forecasts of the block, in batches of consecutive origins of one series.
            var forecasts = [[Forecast]](repeating: [], count: models.count)
            var batches = [[Int]]()
            for g in members {
                if let last = batches.last?.last, all[last].series == all[g].series, batches.last!.count < perBatch {
                    batches[batches.count - 1].append(g)
                } else {
                    batches.append([g])
                }
            }
            for (m, (_, model)) in models.enumerated() {
                for batch in batches {
                    let si = all[batch[0]].series
                    forecasts[m] += try forecast(
                        model, series[si], candles: candlesOf[si], origins: batch.map { all[$0].origin })
                    done += batch.count
                    progress?(done, total)
                }
            }
            for (index, g) in members.enumerated() {
                let (si, o) = all[g]
                scoreOrigin(
                    o, of: series[si], candles: candlesOf[si], values: valuesOf[si],
                    forecasts: forecasts.map { $0[index] }, bundles: models.map(\.name), into: &block,
                    perOrigin: perOrigin)
            }
            blocks.append(block)
        }
        // Neighbouring origins share truth candles when they are closer than the horizon: the
        // Newey-West lag covers the overlap.
        let spacing = plans.first.map { $0.count > 1 ? $0[1] - $0[0] : steps } ?? steps
        return BacktestPartial(
            plan: plan, samples: options.samples, seed: options.seed, bundles: models.map(\.name), series: spans,
            shard: k, shards: n, blockCount: blockCount, lag: max(0, (steps + spacing - 1) / max(1, spacing) - 1),
            blocks: blocks)
    }

    /// Scores one origin o of series `s`: each bundle's forecast (`forecasts`, in `bundles` order) and
    /// both baselines, on every column of the plan (`values`: the series' values per column), into
    /// `block`'s sums.
    func scoreOrigin(
        _ o: Int, of s: CandleSeries, candles: [Candle], values valuesByField: [[Double]], forecasts: [Forecast],
        bundles: [String], into block: inout BlockResult, perOrigin: ((OriginRow) -> Void)?
    ) {
        let steps = plan.steps
        for (fi, field) in plan.fields.enumerated() {
            let values = valuesByField[fi]
            let context = values[(o - plan.lookback)..<o], truth = Array(values[o..<(o + steps)])
            let last = context.last!
            var naive = 0.0, logs = [Double]()
            for t in context.indices.dropFirst() {
                naive += abs(context[t] - context[t - 1])
                if context[t] > 0, context[t - 1] > 0 { logs.append(log(context[t] / context[t - 1])) }
            }
            let scale = naive / Double(context.count - 1)
            let sigma: Double = {
                guard logs.count >= 2 else { return 0 }
                let m = logs.reduce(0, +) / Double(logs.count)
                return (logs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(logs.count - 1)).squareRoot()
            }()
            func score(_ name: String, _ dist: (Int) -> any StepDistribution) {
                var sum = Tally()
                var crps = 0.0, mae = 0.0
                for h in 0..<steps {
                    var t = Tally()
                    let d = dist(h)
                    t.record(d, truth: truth[h], last: last, scale: scale)
                    perOrigin?(
                        OriginRow(
                            series: s.name, origin: candles[o].date, forecaster: name, column: field, step: h + 1,
                            truth: truth[h], point: d.point, quantiles: OriginRow.levels.map { d.quantile($0) },
                            crps: t.crps))
                    block.fields[fi].tallies[name]![h].add(t)
                    sum.add(t)
                    crps += t.crps; mae += t.absoluteError
                }
                block.fields[fi].perSeries[name]![s.name, default: Tally()].add(sum)
                block.fields[fi].crps[name]!.append(crps / Double(steps))
                block.fields[fi].mae[name]!.append(mae / Double(steps))
            }
            for (f, name) in zip(forecasts, bundles) {
                let paths = f.paths.map { $0.map { Backtest.value($0, field) } }
                let mean = f.mean.map { Backtest.value($0, field) }
                score(name) { h in Ensemble(sorted: paths.map { $0[h] }.sorted(), point: mean[h]) }
            }
            score("persistence") { _ in Persistence(last: last) }
            score("random walk") { h in RandomWalk(last: last, sigma: sigma * Double(h + 1).squareRoot()) }
        }
    }

    static let baselines = ["persistence", "random walk"]
}

/// One (origin, forecaster, step) of a backtest, as `--per-origin FILE.csv` writes it.
public struct OriginRow: Sendable, Equatable {
    public static let levels: [Double] = [0.1, 0.5, 0.9]
    public static let csvHeader = "series,origin,forecaster,column,step,truth,mean,q10,q50,q90,crps"
    public let series: String
    /// The date of the first forecast candle.
    public let origin: Date
    public let forecaster: String
    /// The scored column (close, volume, ...).
    public let column: String
    public let step: Int
    public let truth: Double
    /// The point forecast (a bundle's mean path, a baseline's last value).
    public let point: Double
    /// At OriginRow.levels.
    public let quantiles: [Double]
    public let crps: Double

    /// One CSV line (shortest round-trip numbers; names quoted when they hold a comma or a quote).
    public var csv: String {
        func quote(_ s: String) -> String {
            s.contains(",") || s.contains("\"") || s.contains("\n")
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let date = ISO8601DateFormatter().string(from: origin)
        let numbers = ([truth, point] + quantiles + [crps]).map { "\($0)" }
        return ([quote(series), date, quote(forecaster), column, "\(step)"] + numbers).joined(separator: ",")
    }
}

/// One block's sums, per scored column (in the plan's order).
public struct BlockResult: Sendable, Equatable, Codable {
    public let block: Int
    public var fields: [FieldBlock]

    init(block: Int, names: [String], steps: Int, fields: Int) {
        self.block = block
        self.fields = [FieldBlock](repeating: FieldBlock(names: names, steps: steps), count: fields)
    }
}

/// One block's sums for one column: per forecaster, per-horizon tallies, per-series totals, and
/// each origin's mean CRPS and MAE over steps (in origin order, for the comparisons).
public struct FieldBlock: Sendable, Equatable, Codable {
    public var tallies: [String: [Tally]]
    public var perSeries: [String: [String: Tally]]
    public var crps: [String: [Double]]
    public var mae: [String: [Double]]

    init(names: [String], steps: Int) {
        tallies = Dictionary(uniqueKeysWithValues: names.map { ($0, [Tally](repeating: Tally(), count: steps)) })
        perSeries = Dictionary(uniqueKeysWithValues: names.map { ($0, [:]) })
        crps = Dictionary(uniqueKeysWithValues: names.map { ($0, []) })
        mae = crps
    }
}

/// A shard's result (`kronos-run backtest --shard K/N`): the study's plan and settings, and the sums of
/// its blocks. `BacktestReport(merging:)` of all N shards is the unsharded report, bit for bit.
public struct BacktestPartial: Sendable, Equatable, Codable {
    public let plan: BacktestPlan
    public let samples: Int
    public let seed: UInt64
    public let bundles: [String]
    public let series: [SeriesSpan]
    public let shard: Int
    public let shards: Int
    public let blockCount: Int
    public let lag: Int
    public let blocks: [BlockResult]
}

extension BacktestReport {
    /// The report of a whole study from its shards (any order; each block exactly once).
    public init(merging parts: [BacktestPartial]) throws(KronosError) {
        guard let first = parts.first else { throw .invalidInput("no partial results to merge") }
        for p in parts
        where p.plan != first.plan || p.samples != first.samples || p.seed != first.seed
            || p.bundles != first.bundles || p.series != first.series || p.shards != first.shards
            || p.blockCount != first.blockCount
        {
            throw .invalidInput(
                "shard \(p.shard)/\(p.shards) is from another study than shard \(first.shard)/\(first.shards) "
                    + "(plan, samples, seed, bundles, series or shard count differ)")
        }
        let blocks = parts.flatMap(\.blocks).sorted { $0.block < $1.block }
        guard blocks.map(\.block) == Array(0..<first.blockCount) else {
            let have = Set(blocks.map(\.block))
            let missing = (0..<first.blockCount).filter { !have.contains($0) }
            throw .invalidInput(
                missing.isEmpty
                    ? "a block appears twice: the same shard given twice?"
                    : "blocks \(missing.prefix(8).map(String.init).joined(separator: ", ")) missing: "
                        + "merge needs all \(first.shards) shards (found \(Set(parts.map(\.shard)).sorted()))")
        }
        let fields = first.plan.fields.indices.map { fi in
            FieldReport(
                field: first.plan.fields[fi], blocks: blocks.map { $0.fields[fi] }, bundles: first.bundles,
                series: first.series, steps: first.plan.steps, lag: first.lag)
        }
        self.init(plan: first.plan, samples: first.samples, seed: first.seed, series: first.series, fields: fields)
    }
}

extension FieldReport {
    /// One column's scores from its sums over all blocks (in block order).
    init(field: String, blocks: [FieldBlock], bundles: [String], series: [SeriesSpan], steps: Int, lag: Int) {
        let names = bundles + Backtest.baselines
        var tallies = [String: [Tally]](), perSeries = [String: [String: Tally]]()
        var crps = [String: [Double]](), mae = [String: [Double]]()
        for n in names {
            tallies[n] = [Tally](repeating: Tally(), count: steps)
            perSeries[n] = [:]
        }
        for b in blocks {
            for n in names {
                for h in 0..<steps { tallies[n]![h].add(b.tallies[n]![h]) }
                for (s, t) in b.perSeries[n]!.sorted(by: { $0.key < $1.key }) {
                    perSeries[n]![s, default: Tally()].add(t)
                }
                crps[n, default: []] += b.crps[n]!
                mae[n, default: []] += b.mae[n]!
            }
        }
        var comparisons = [Comparison]()
        func compare(_ a: String, _ b: String) {
            for (loss, table) in [("CRPS", crps), ("MAE", mae)] {
                let la = table[a]!, lb = table[b]!
                let d = zip(la, lb).map { $0 - $1 }
                let mb = lb.reduce(0, +) / Double(lb.count), ma = la.reduce(0, +) / Double(la.count)
                let test = DieboldMariano(differences: d, lag: lag)
                let base = mb != 0 ? mb : 1
                comparisons.append(
                    Comparison(
                        a: a, b: b, loss: loss, meanA: ma, meanB: mb, relative: (ma - mb) / base,
                        relativeLower95: (test?.lower95 ?? ma - mb) / base,
                        relativeUpper95: (test?.upper95 ?? ma - mb) / base, test: test))
            }
        }
        for i in bundles.indices {
            for j in bundles.indices where j > i { compare(bundles[j], bundles[i]) }
        }
        for b in bundles { for base in Backtest.baselines { compare(b, base) } }
        var ratios = [String: Double]()
        for b in bundles {
            for base in Backtest.baselines {
                for (metric, pick) in [("CRPS", \HorizonScores.crps), ("MAE", \HorizonScores.mae)] {
                    var logSum = 0.0, count = 0
                    for s in series where s.origins > 0 {
                        guard let tb = perSeries[b]![s.name], let tr = perSeries[base]![s.name] else { continue }
                        let x = HorizonScores(tb)[keyPath: pick], y = HorizonScores(tr)[keyPath: pick]
                        if x > 0, y > 0 { logSum += log(x / y); count += 1 }
                    }
                    if count > 0 { ratios["\(b) / \(base) \(metric)"] = exp(logSum / Double(count)) }
                }
            }
        }
        let reports = names.map { n in
            var all = Tally()
            for t in tallies[n]! { all.add(t) }
            return ForecasterReport(
                name: n, kind: bundles.contains(n) ? "bundle" : "baseline",
                horizons: tallies[n]!.map(HorizonScores.init), overall: HorizonScores(all),
                perSeries: perSeries[n]!.mapValues(HorizonScores.init))
        }
        self.init(field: field, forecasters: reports, comparisons: comparisons, geometricMeanRatios: ratios)
    }
}

extension BacktestPartial {
    /// Sorted-key JSON (what `--shard` writes and `merge` reads).
    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }

    public init(json data: Data, file: String) throws(KronosError) {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        d.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { self = try d.decode(BacktestPartial.self, from: data) } catch {
            throw .invalidInput("\(file): not a backtest partial result (kronos-run backtest --shard): \(error)")
        }
    }
}
