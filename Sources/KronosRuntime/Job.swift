// A whole `kronos-run` forecast: read CSVs, check options, forecast as one batch, summarize
// (mean, quantiles) and render CSV / JSON / SVG. The executable only parses and prints.
import Foundation
import KronosBundle

public struct RunOptions: Sendable {
    public var inputs: [String]
    public var predictionLength: Int
    public var lookback: Int?
    public var maxContext: Int?
    public var interval: String?
    public var sampling = SamplingSettings()
    public var samples = 1
    public var seed: UInt64 = 0
    public var cache: CacheMode = .exact
    /// nil: the model's defaults (KronosModel.defaultActivations / defaultKVCache).
    public var activations: ActivationPrecision?
    public var kvCache: KVCachePrecision?
    public init(inputs: [String], predictionLength: Int) { self.inputs = inputs; self.predictionLength = predictionLength }

    /// Value checks (exit 1 with one line each).
    public func check() throws(RuntimeError) {
        guard !inputs.isEmpty else { throw .options("no --input file given") }
        guard predictionLength >= 1 else { throw .options("--pred-len must be at least 1, found \(predictionLength)") }
        if let l = lookback, l < 2 { throw .options("--lookback must be at least 2, found \(l)") }
        if let m = maxContext, m < 1 { throw .options("--max-context must be at least 1, found \(m)") }
        guard sampling.temperature > 0, sampling.temperature.isFinite else {
            throw .options("--temperature must be greater than 0, found \(sampling.temperature) (use --top-k 1 for greedy decoding)")
        }
        guard sampling.topP > 0, sampling.topP <= 1 else { throw .options("--top-p must be in (0, 1], found \(sampling.topP)") }
        guard sampling.topK >= 0 else { throw .options("--top-k must be 0 (off) or positive, found \(sampling.topK)") }
        guard samples >= 1, samples <= 4096 else { throw .options("--samples must be in 1...4096, found \(samples)") }
        if let i = interval, Candles.parseInterval(i) == nil {
            throw .options("--interval \"\(i)\": expected a positive number with a unit s, m, h, d or w (e.g. 4h)")
        }
    }
}

public struct SeriesResult: Sendable {
    public var file: String
    public var history: CandleTable      // the rows used (after --lookback)
    public var timestamps: [String]      // future timestamps [P]
    public var mean: [Float]             // [P, 6]
    /// 10 / 50 / 90 % quantiles over samples [P, 6] (samples > 1 only).
    public var quantiles: [(level: Double, values: [Float])]
    public var s1: [[Int]]
    public var s2: [[Int]]
}

public struct RunResult: Sendable {
    public var bundle: String
    public var settings: ForecastSettings
    /// The arithmetic the forecast ran with (the settings' requests, defaults resolved).
    public var activations: ActivationPrecision
    public var kvCache: KVCachePrecision
    public var series: [SeriesResult]
    public var notes: [String]
    public var loadSeconds: Double
    public var forecastSeconds: Double
}

public enum ForecastJob {
    public static let quantileLevels = [0.1, 0.5, 0.9]

    public static func run(model: KronosModel, options o: RunOptions, progress: ((ForecastEvent) -> Void)? = nil) throws(RuntimeError) -> RunResult {
        try o.check()
        var tables = [CandleTable]()
        var notes = [String]()
        for path in o.inputs {
            var t = try Candles.read(path: path)
            if let l = o.lookback {
                guard l <= t.rows else { throw .input(file: path, line: nil, column: nil, message: "--lookback \(l) exceeds the \(t.rows) rows of the file") }
                t = CandleTable(file: t.file, times: Array(t.times.suffix(l)), format: t.format, values: Array(t.values.suffix(l * 6)), notes: t.notes)
            }
            notes += t.notes.map { "\(path): \($0)" }
            tables.append(t)
        }
        for t in tables.dropFirst() where t.rows != tables[0].rows {
            throw .input(file: t.file, line: nil, column: nil,
                         message: "has \(t.rows) rows but \(tables[0].file) has \(tables[0].rows); series forecast together need the same length (use --lookback)")
        }
        let P = o.predictionLength
        var inputs = [SeriesInput](), futures = [[Int64]]()
        for t in tables {
            let step = o.interval.flatMap(Candles.parseInterval) ?? Candles.commonInterval(t.times)
            let future = (1...P).map { t.times.last! + Int64($0) * step }
            futures.append(future)
            inputs.append(SeriesInput(values: t.values, stamps: t.times.map(Candles.stamp), futureStamps: future.map(Candles.stamp)))
        }
        let window = o.maxContext ?? model.maxContext
        if tables[0].rows > window {
            notes.append("\(tables[0].rows) input rows exceed the \(window)-row context: the model sees the last \(window) (the tokenizer encodes all)")
        }
        var settings = ForecastSettings(predictionLength: P, maxContext: window, sampling: o.sampling, samples: o.samples, seed: o.seed)
        settings.cache = o.cache
        settings.activations = o.activations
        settings.kvCache = o.kvCache
        let start = Date()
        let forecasts = try model.forecast(inputs, settings: settings, progress: progress)
        let seconds = Date().timeIntervalSince(start)
        var series = [SeriesResult]()
        for (k, f) in forecasts.enumerated() {
            var q = [(level: Double, values: [Float])]()
            if o.samples > 1 {
                q = quantileLevels.map { level in
                    (level, (0..<(P * 6)).map { i in quantile(f.paths.map { $0[i] }, level) })
                }
            }
            series.append(SeriesResult(file: tables[k].file, history: tables[k], timestamps: futures[k].map { Candles.format($0, tables[k].format) },
                                       mean: f.mean, quantiles: q, s1: f.s1, s2: f.s2))
        }
        return RunResult(bundle: model.path, settings: settings, activations: model.activations(o.activations), kvCache: model.kvCache(o.kvCache),
                         series: series, notes: notes,
                         loadSeconds: model.loadSeconds, forecastSeconds: seconds)
    }

    /// Quantile with linear interpolation between order statistics (numpy's default).
    public static func quantile(_ v: [Float], _ q: Double) -> Float {
        let s = v.sorted()
        let pos = q * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, s.count - 1)
        let frac = Float(pos - Double(lo))
        return s[lo] + (s[hi] - s[lo]) * frac
    }

    /// CSV: timestamps,open,high,low,close,volume,amount (a leading `series` column for several inputs).
    public static func csv(_ r: RunResult) -> String {
        let multi = r.series.count > 1
        var out = (multi ? "series," : "") + "timestamps," + Candles.columns.joined(separator: ",") + "\n"
        for s in r.series {
            for (t, ts) in s.timestamps.enumerated() {
                if multi { out += csvCell((s.file as NSString).lastPathComponent) + "," }
                out += ts + "," + (0..<6).map { "\(s.mean[t * 6 + $0])" }.joined(separator: ",") + "\n"
            }
        }
        return out
    }

    static func csvCell(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// JSON: settings, and per series the forecast rows and (samples > 1) quantiles.
    public static func json(_ r: RunResult) -> String {
        func rows(_ s: SeriesResult, _ v: [Float]) -> [[String: Any]] {
            s.timestamps.enumerated().map { t, ts in
                var row: [String: Any] = ["timestamp": ts]
                for (c, name) in Candles.columns.enumerated() { row[name] = Double(v[t * 6 + c]) }
                return row
            }
        }
        let settings: [String: Any] = [
            "pred_len": r.settings.predictionLength, "max_context": r.settings.maxContext,
            "temperature": Double(r.settings.sampling.temperature), "top_k": r.settings.sampling.topK,
            "top_p": Double(r.settings.sampling.topP), "samples": r.settings.samples, "seed": r.settings.seed,
            // the cache mode, activation arithmetic and cache precision the forecast ran with
            "cache": r.settings.cache.rawValue, "activations": r.activations.rawValue,
            "kv_cache": r.kvCache.rawValue,
        ]
        let series: [[String: Any]] = r.series.map { s in
            var o: [String: Any] = ["input": s.file, "rows": s.history.rows, "forecast": rows(s, s.mean)]
            if !s.quantiles.isEmpty {
                var q = [String: Any]()
                for (level, values) in s.quantiles { q["p\(Int((level * 100).rounded()))"] = rows(s, values) }
                o["quantiles"] = q
            }
            return o
        }
        let obj: [String: Any] = ["bundle": r.bundle, "settings": settings, "series": series, "notes": r.notes]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
