// A whole `kronos-run` forecast: read and check the CSVs, choose each series' calendar and future
// timestamps, check options, forecast as one batch, summarize (mean, quantiles, probability of
// closing up) and render CSV / JSON. The executable only parses, resolves outputs and prints.
import Foundation
import Kronos
import KronosEngineTypes
import KronosBundle

/// The sampling settings of a run (temperature, top-k, top-p).
public typealias SamplingSettings = KronosEngineTypes.SamplingSettings
/// A run's error: a message naming the file, line, option or value.
public typealias RunError = KronosEngineTypes.RuntimeError

public struct RunOptions: Sendable {
    public var inputs: [String]
    public var predictionLength: Int
    public var lookback: Int?
    public var maxContext: Int?
    public var interval: String?
    /// Column names the header does not say in the usual way.
    public var mapping = ColumnMapping()
    /// nil: inferred per series (weekdays when the input has no weekend rows).
    public var calendar: CalendarKind?
    /// A file of future timestamps (any calendar: holidays, sessions); overrides interval and calendar.
    public var futureTimestamps: String?
    /// Quantile levels reported over the sample paths (samples > 1, or when `quantilesGiven`).
    public var quantiles: [Double] = ForecastJob.defaultQuantiles
    /// The levels were asked for (the CSV output then carries them too).
    public var quantilesGiven = false
    public var sampling = SamplingSettings()
    public var samples = 1
    public var seed: UInt64 = 0
    public var cache: CacheMode = .exact
    /// nil: the model's defaults (KronosModel.defaultActivations / defaultKVCache).
    public var activations: ActivationPrecision?
    public var kvCache: KVCachePrecision?
    public init(inputs: [String], predictionLength: Int) {
        self.inputs = inputs; self.predictionLength = predictionLength
    }

    /// Value checks (exit 1 with one line each).
    public func check() throws(RuntimeError) {
        guard !inputs.isEmpty else { throw .options("no --input file given") }
        let limit = EngineLimits.maxWindow
        guard (1...limit).contains(predictionLength) else {
            throw .options("--pred-len must be in 1...\(limit), found \(predictionLength)")
        }
        if let l = lookback, !(2...Int(Int32.max)).contains(l) {
            throw .options("--lookback must be in 2...\(Int32.max), found \(l)")
        }
        if let m = maxContext, !(1...limit).contains(m) {
            throw .options("--max-context must be in 1...\(limit), found \(m)")
        }
        guard sampling.temperature > 0, sampling.temperature.isFinite else {
            throw .options(
                "--temperature must be greater than 0, found \(sampling.temperature) (use --top-k 1 for greedy "
                    + "decoding)"
            )
        }
        guard sampling.topP > 0, sampling.topP <= 1 else {
            throw .options("--top-p must be in (0, 1], found \(sampling.topP)")
        }
        guard sampling.topK >= 0 else { throw .options("--top-k must be 0 (off) or positive, found \(sampling.topK)") }
        guard samples >= 1, samples <= EngineLimits.maxBatch else {
            throw .options("--samples must be in 1...\(EngineLimits.maxBatch), found \(samples)")
        }
        guard inputs.count <= EngineLimits.maxBatch / samples else {
            throw .options(
                "\(inputs.count) inputs × --samples \(samples) = \(inputs.count * samples) sequences; at most "
                    + "\(EngineLimits.maxBatch) run as one batch"
            )
        }
        if let i = interval, Candles.parseInterval(i) == nil {
            throw .options("--interval \"\(i)\": expected a positive number with a unit s, m, h, d or w (e.g. 4h)")
        }
        guard !quantiles.isEmpty, quantiles.count <= 99 else {
            throw .options("--quantiles needs 1 to 99 levels, found \(quantiles.count)")
        }
        for q in quantiles where !(q > 0 && q < 1) {
            throw .options("--quantiles: every level must be in (0, 1), found \(q)")
        }
        if futureTimestamps != nil, interval != nil || calendar != nil {
            throw .options("--future-timestamps gives the future times itself: drop --interval / --calendar")
        }
    }
}

/// One input, read and checked, with its future timestamps.
public struct PreparedSeries: Sendable {
    public var table: CandleTable  // the rows used (after --lookback)
    public var future: FutureTimes
    /// The calendar the future follows and how it was chosen ("option", "inferred: <why>", "file").
    public var calendar: CalendarKind?
    public var calendarSource: String
    /// Spacing of the future rows (nil with a future-timestamps file).
    public var interval: Int64?
    public var notes: [String]
    public var warnings: [String]
}

public struct SeriesResult: Sendable {
    public var file: String
    public var history: CandleTable  // the rows used (after --lookback)
    public var timestamps: [String]  // future timestamps [P], as written
    public var futureTimes: [Int64]  // the same, wall-clock seconds
    public var calendar: CalendarKind?
    public var calendarSource: String
    public var mean: [Float]  // [P, 6]
    /// Quantiles over the sample paths per level [P, 6] (Forecast.quantile's definition: numpy's type 7).
    public var quantiles: [(level: Double, values: [Float])]
    /// Share of paths whose close is above the last input close, per step [P].
    public var probabilityUp: [Double]
    /// Every sample's path [samples][P, 6].
    public var paths: [[Float]]
    /// The last input close (what `probabilityUp` compares with).
    public var lastClose: Float { history.values[(history.rows - 1) * 6 + 3] }
}

public struct RunResult: Sendable {
    public var bundle: String
    public var settings: ForecastSettings
    /// The arithmetic the forecast ran with (the settings' requests, defaults resolved).
    public var activations: ActivationPrecision
    public var kvCache: KVCachePrecision
    public var quantileLevels: [Double]
    public var series: [SeriesResult]
    /// What the user may want to know (layout recognised, calendar inferred, a faster option).
    public var notes: [String]
    /// What may make the forecast worse than it could be (gaps, OHLC order, too few samples).
    public var warnings: [String]
    public var loadSeconds: Double
    public var forecastSeconds: Double
}

public enum ForecastJob {
    public static let defaultQuantiles = [0.1, 0.5, 0.9]
    /// Paths wanted beyond each reported quantile before it means much.
    public static let pathsPerTail = 10

    /// Reads, checks and lays out every input (no model needed: a bad file fails before loading).
    public static func prepare(_ o: RunOptions) throws(RuntimeError) -> [PreparedSeries] {
        try o.check()
        let futureFile = try o.futureTimestamps.map { path throws(RuntimeError) in try TradingCalendar.read(path: path)
        }
        var out = [PreparedSeries]()
        for path in o.inputs {
            var t = try Candles.read(path: path, mapping: o.mapping)
            let inferred = TradingCalendar.infer(t)
            if let l = o.lookback {
                guard l <= t.rows else {
                    throw .input(
                        file: path, line: nil, column: nil,
                        message: "--lookback \(l) exceeds the \(t.rows) rows of the file")
                }
                t = t.suffix(l)
            }
            var notes = t.notes.map { "\(path): \($0)" }, warnings = t.warnings.map { "\(path): \($0)" }
            let s: PreparedSeries
            if let futureFile, let fp = o.futureTimestamps {
                let f = try TradingCalendar.future(after: t, from: futureFile, path: fp, count: o.predictionLength)
                s = PreparedSeries(
                    table: t, future: f, calendar: nil, calendarSource: "file \(fp)", interval: nil, notes: notes,
                    warnings: warnings)
            } else {
                let calendar = o.calendar ?? inferred.calendar
                let source = o.calendar != nil ? "option" : "inferred: \(inferred.reason)"
                if o.calendar == nil, calendar == .weekdays {
                    notes.append(
                        "\(path): weekdays calendar (inferred: \(inferred.reason)); future dates skip Saturday and "
                            + "Sunday (--calendar 24x7 to override)"
                    )
                }
                let step = o.interval.flatMap(Candles.parseInterval) ?? Candles.commonInterval(t.times)
                let gaps = TradingCalendar.gapWarnings(
                    t, step: step, calendar: calendar, exactTimes: "--future-timestamps FILE")
                warnings += gaps.map { "\(path): \($0)" }
                let times = try TradingCalendar.future(
                    after: t, step: step, count: o.predictionLength, calendar: calendar)
                s = PreparedSeries(
                    table: t, future: FutureTimes(times: times, format: t.format), calendar: calendar,
                    calendarSource: source,
                    interval: step, notes: notes, warnings: warnings)
            }
            out.append(s)
        }
        for s in out.dropFirst() where s.table.rows != out[0].table.rows {
            throw .input(
                file: s.table.file, line: nil, column: nil,
                message:
                    "has \(s.table.rows) rows but \(out[0].table.file) has \(out[0].table.rows); series forecast "
                    + "together need the same length (use --lookback)"
            )
        }
        return out
    }

    /// Steps of an exact forecast that recompute the whole window (the window slides at step i when
    /// rows + i > window), and the most input rows that never slide.
    public static func slidingSteps(rows: Int, predictionLength: Int, window: Int) -> (steps: Int, largestLookback: Int)
    {
        // Step i slides when rows + i > window, i.e. for i >= window - rows + 1.
        let steps = predictionLength - max(0, min(predictionLength, window - rows + 1))
        return (steps, max(0, window - predictionLength + 1))
    }

    /// What a run with these inputs and options should tell its user before it starts: the window
    /// sliding under the exact cache (its cost and the two ways out), too few samples for the
    /// quantiles asked.
    public static func advice(prepared: [PreparedSeries], options o: RunOptions, window: Int) -> (
        notes: [String], warnings: [String]
    ) {
        var notes = [String](), warnings = [String]()
        let P = o.predictionLength, T = prepared[0].table.rows
        let slide = slidingSteps(rows: T, predictionLength: P, window: window)
        let hint = o.cache == .exact && slide.steps > 0 && P <= window
        if T > window, !hint {
            notes.append(
                "\(T) input rows exceed the \(window)-row window: the model sees the last \(window) (the tokenizer "
                    + "encodes all)"
            )
        }
        if hint {
            notes.append(
                "\(T) input rows + \(P) steps exceed the \(window)-row window: \(slide.steps) of \(P) steps recompute "
                    + "the whole window "
                    + "(exact, as the reference does, and slow). Faster: --lookback \(slide.largestLookback) (the most "
                    + "rows that never slide) "
                    + "or --cache approx-slide (an approximation: on Kronos-mini's sliding case s1 KLD 0.023 instead "
                    + "of 0.0003, top-1 95 %)"
            )
        }
        if o.samples > 1 || o.quantilesGiven {
            let tail = (o.quantiles.map { min($0, 1 - $0) }.min()! * 1e9).rounded() / 1e9
            if Double(o.samples) * tail < Double(pathsPerTail) {
                let need = Int((Double(pathsPerTail) / tail).rounded(.up))
                let level = o.quantiles.min { min($0, 1 - $0) < min($1, 1 - $1) }!
                warnings.append(
                    "--samples \(o.samples) leaves \(NumberText.decimal(Float(Double(o.samples) * tail))) paths beyond "
                        + "the "
                        + "\(level) quantile: about \(need) samples give \(pathsPerTail) per tail")
            }
        }
        return (notes, warnings)
    }

    public static func run(model: KronosModel, options o: RunOptions, progress: ((ForecastProgress) -> Void)? = nil)
        throws(RuntimeError) -> RunResult
    {
        try run(model: model, prepared: try prepare(o), options: o, progress: progress)
    }

    /// The forecast of prepared inputs through the façade (`KronosModel`), with the future times
    /// the preparation chose, summarized for the outputs.
    public static func run(
        model: KronosModel, prepared: [PreparedSeries], options o: RunOptions,
        progress: ((ForecastProgress) -> Void)? = nil
    ) throws(RuntimeError) -> RunResult {
        try o.check()
        let advice = advice(prepared: prepared, options: o, window: o.maxContext ?? model.maxContext)
        let notes = prepared.flatMap(\.notes) + advice.notes, warnings = prepared.flatMap(\.warnings) + advice.warnings
        let P = o.predictionLength, window = o.maxContext ?? model.maxContext
        let quantileLevels = o.quantiles
        let reportsQuantiles = o.samples > 1 || o.quantilesGiven
        let histories = prepared.map { CandleSeries(table: $0.table, name: $0.table.file) }
        var options = ForecastOptions(
            samples: o.samples, seed: o.seed, temperature: Double(o.sampling.temperature), topK: o.sampling.topK,
            topP: Double(o.sampling.topP), maxContext: window)
        options.cache = o.cache
        options.activations = o.activations
        options.kvCache = o.kvCache
        let start = Date()
        let futureDates = zip(prepared, histories).map { s, h in
            s.future.times.map {
                Date(timeIntervalSince1970: TimeInterval($0) - TimeInterval(h.timeZone.secondsFromGMT()))
            }
        }
        let forecasts: [Forecast]
        do {
            forecasts = try model.forecastSynchronously(
                histories, steps: P, options: options, futureDates: futureDates, progress: progress)
        } catch { throw RuntimeError(error) }
        let seconds = Date().timeIntervalSince(start)
        var series = [SeriesResult]()
        for (k, f) in forecasts.enumerated() {
            let s = prepared[k]
            func floats(_ candles: [Candle]) -> [Float] {
                candles.flatMap { c in [c.open, c.high, c.low, c.close, c.volume ?? 0, c.amount ?? 0].map { Float($0) }
                }
            }
            let q =
                reportsQuantiles
                ? zip(quantileLevels, f.quantiles(quantileLevels)).map { (level: $0, values: floats($1)) } : []
            series.append(
                SeriesResult(
                    file: s.table.file, history: s.table,
                    timestamps: s.future.times.map { Candles.format($0, s.future.format) },
                    futureTimes: s.future.times,
                    calendar: s.calendar, calendarSource: s.calendarSource, mean: floats(f.mean), quantiles: q,
                    probabilityUp: f.probabilityUp, paths: f.paths.map(floats)))
        }
        var settings = ForecastSettings(
            predictionLength: P, maxContext: window, sampling: o.sampling, samples: o.samples, seed: o.seed)
        settings.cache = o.cache
        settings.activations = o.activations
        settings.kvCache = o.kvCache
        return RunResult(
            bundle: model.path, settings: settings, activations: model.activations(o.activations),
            kvCache: model.kvCache(o.kvCache),
            quantileLevels: reportsQuantiles ? quantileLevels : [], series: series, notes: notes, warnings: warnings,
            loadSeconds: model.loadSeconds, forecastSeconds: seconds)
    }

    /// Name of a series in the CSV outputs: its file name (with a number when two inputs share one).
    public static func seriesNames(_ files: [String]) -> [String] {
        distinct(files.map { ($0 as NSString).lastPathComponent }, mark: "#")
    }

    /// `names`, each one that occurs more than once followed by `mark` and its 1-based position.
    public static func distinct(_ names: [String], mark: String) -> [String] {
        names.enumerated().map { i, n in names.filter { $0 == n }.count > 1 ? "\(n)\(mark)\(i + 1)" : n }
    }

    static func csvCell(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") || s.contains("\r")
            ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// CSV: timestamps,open,high,low,close,volume,amount (a leading `series` column for several
    /// inputs), then with `quantileColumns` one column per level and field (close_p10, ...).
    public static func csv(_ r: RunResult, quantileColumns: Bool = false) -> String {
        let multi = r.series.count > 1
        let names = seriesNames(r.series.map(\.file))
        let levels = quantileColumns ? r.quantileLevels : []
        var out = (multi ? "series," : "") + "timestamps," + Candles.columns.joined(separator: ",")
        for level in levels {
            out += "," + Candles.columns.map { "\($0)_\(NumberText.percentKey(level))" }.joined(separator: ",")
        }
        out += "\n"
        for (k, s) in r.series.enumerated() {
            for (t, ts) in s.timestamps.enumerated() {
                if multi { out += csvCell(names[k]) + "," }
                out += csvCell(ts) + "," + (0..<6).map { NumberText.decimal(s.mean[t * 6 + $0]) }.joined(separator: ",")
                for level in levels {
                    let v = s.quantiles.first { $0.level == level }!.values
                    out += "," + (0..<6).map { NumberText.decimal(v[t * 6 + $0]) }.joined(separator: ",")
                }
                out += "\n"
            }
        }
        return out
    }

    /// Every sample path: series,sample,timestamps,open,high,low,close,volume,amount; samples
    /// numbered from 1, samples × pred-len rows per series.
    public static func pathsCSV(_ r: RunResult) -> String {
        let names = seriesNames(r.series.map(\.file))
        var out = "series,sample,timestamps," + Candles.columns.joined(separator: ",") + "\n"
        for (k, s) in r.series.enumerated() {
            for (j, path) in s.paths.enumerated() {
                for (t, ts) in s.timestamps.enumerated() {
                    out +=
                        csvCell(names[k]) + ",\(j + 1)," + csvCell(ts) + ","
                        + (0..<6).map { NumberText.decimal(path[t * 6 + $0]) }.joined(separator: ",") + "\n"
                }
            }
        }
        return out
    }

    // JSON, encoded from Codable values (Float as its shortest round-trip text: top_p 0.9, not
    // 0.8999999761581421).
    struct JSONRow: Encodable {
        var timestamp: String
        var values: [Float]
        var probabilityUp: Double?
        struct Key: CodingKey {
            var stringValue: String
            init(_ s: String) { stringValue = s }
            init?(stringValue s: String) { stringValue = s }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(timestamp, forKey: Key("timestamp"))
            for (i, name) in Candles.columns.enumerated() { try c.encode(values[i], forKey: Key(name)) }
            if let probabilityUp { try c.encode(probabilityUp, forKey: Key("prob_up")) }
        }
    }
    struct JSONSettings: Encodable {
        var predLen: Int, maxContext: Int, temperature: Float, topK: Int, topP: Float, samples: Int, seed: UInt64
        var cache: String, activations: String, kvCache: String, quantiles: [Double]
        enum CodingKeys: String, CodingKey {
            case predLen = "pred_len", maxContext = "max_context", temperature, topK = "top_k", topP = "top_p", samples,
                seed
            case cache, activations, kvCache = "kv_cache", quantiles
        }
    }
    struct JSONSeries: Encodable {
        var input: String, rows: Int, calendar: String, calendarSource: String, lastClose: Float
        var forecast: [JSONRow]
        var quantiles: [String: [JSONRow]]?
        enum CodingKeys: String, CodingKey {
            case input, rows, calendar, calendarSource = "calendar_source", lastClose = "last_close", forecast,
                quantiles
        }
    }
    struct JSONRun: Encodable {
        var version: String, bundle: String, settings: JSONSettings, series: [JSONSeries], notes: [String],
            warnings: [String]
    }

    /// JSON: settings as given (defaults resolved), per series the forecast rows with prob_up and
    /// (samples > 1 or --quantiles) the quantile rows keyed p10, p50, ...; notes and warnings.
    public static func json(_ r: RunResult) -> String {
        func rows(_ s: SeriesResult, _ v: [Float], up: Bool) -> [JSONRow] {
            s.timestamps.enumerated().map { t, ts in
                JSONRow(
                    timestamp: ts, values: Array(v[(t * 6)..<(t * 6 + 6)]), probabilityUp: up ? s.probabilityUp[t] : nil
                )
            }
        }
        let st = r.settings
        let settings = JSONSettings(
            predLen: st.predictionLength, maxContext: st.maxContext, temperature: st.sampling.temperature,
            topK: st.sampling.topK, topP: st.sampling.topP, samples: st.samples, seed: st.seed,
            cache: st.cache.rawValue, activations: r.activations.rawValue, kvCache: r.kvCache.rawValue,
            quantiles: r.quantileLevels)
        let series = r.series.map { s in
            JSONSeries(
                input: s.file, rows: s.history.rows, calendar: s.calendar?.rawValue ?? "file",
                calendarSource: s.calendarSource,
                lastClose: s.lastClose, forecast: rows(s, s.mean, up: true),
                quantiles: s.quantiles.isEmpty
                    ? nil
                    : Dictionary(
                        uniqueKeysWithValues: s.quantiles.map {
                            (NumberText.percentKey($0.level), rows(s, $0.values, up: false))
                        }))
        }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data =
            (try? e.encode(
                JSONRun(
                    version: KronosVersion.string, bundle: r.bundle, settings: settings, series: series,
                    notes: r.notes, warnings: r.warnings))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

extension RuntimeError {
    /// A façade error as the run reports it (the message unchanged).
    init(_ e: KronosError) {
        switch e {
        case let .invalidOptions(m), let .invalidInput(m): self = .options(m)
        case let .invalidBundle(m), let .numericFailure(m): self = .model(m)
        case .cancelled: self = .cancelled
        }
    }
}
