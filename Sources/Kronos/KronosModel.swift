// The Kronos façade: load a bundle once, forecast candles with their dates from any number of
// tasks at once. The engine (KronosWideEngine) stays behind it.
import Foundation
import KronosEngineTypes
import Synchronization

/// A Kronos bundle (`.kq`, written by `kronos-convert`), loaded and checked, ready to forecast.
///
/// One model serves any number of concurrent forecasts: nothing a forecast writes is shared.
///
/// ```swift
/// let model = try KronosModel(contentsOf: URL(fileURLWithPath: "btc-4h.kq"))
/// let history = try CandleSeries(contentsOf: URL(fileURLWithPath: "candles.csv"))
/// let forecast = try await model.forecast(history, steps: 48, options: ForecastOptions(samples: 5, seed: 7))
/// print(forecast.mean.last!.close, forecast.quantile(0.9).last!.close, forecast.probabilityUp.last!)
/// ```
public final class KronosModel: Sendable {
    /// The loaded model, in the engine build this processor runs (``engineBuild``).
    package let engine: any ForecastBackend

    /// Loads the bundle at `url`: reads it, checks every field and tensor (sizes, checksums, finite
    /// values), and decompresses the weights once.
    ///
    /// - Parameters:
    ///   - url: a `.kq` bundle.
    ///   - threads: threads each forecast's kernels run on (nil: one per core).
    /// - Throws: ``KronosError/invalidBundle(_:)`` naming the file and what is wrong with it;
    ///   ``KronosError/invalidOptions(_:)`` for a thread count outside 1 ... 4 per core.
    public init(contentsOf url: URL, threads: Int? = nil) throws(KronosError) {
        do { engine = try Self.loadEngine(path: url.path, threads: threads) } catch { throw KronosError(error) }
    }

    /// The most rows the model sees (the window it was trained with, unless the bundle was
    /// converted with a smaller one).
    public var maxContext: Int { engine.maxContext }
    /// The threads each forecast runs on.
    public var threads: Int { engine.threads }
    /// Seconds the load took.
    public var loadSeconds: Double { engine.loadSeconds }
    /// How the bundle was quantized ("q8", "q4", "f16", "f32"; some tensors may be kept wider).
    public var quantization: String { engine.manifest.settings.quantize }
    /// Set when fewer threads started than were asked for (a process limit): the model runs on those.
    public var threadWarning: String? { engine.threadWarning }
    /// The matmul arithmetic a forecast uses when its options ask for none, on this processor.
    public var defaultActivations: ActivationPrecision { engine.defaultActivations }
    /// The key / value cache precision a forecast uses when its options ask for none.
    public var defaultKVCache: KVCachePrecision { engine.defaultKVCache }

    /// Forecasts the next `steps` candles of `history`.
    ///
    /// The forecast runs on threads of its own (not the caller's task), checks for cancellation
    /// before every step, and calls `progress` after every step.
    ///
    /// - Parameters:
    ///   - history: the candles to continue (the model sees the last ``maxContext`` of them).
    ///   - steps: candles to forecast, 1 ... the model's window.
    ///   - options: sampling and arithmetic (defaults: the reference implementation's).
    ///   - progress: called from the forecast's thread after every step.
    /// - Returns: the sample paths, their mean and quantiles, with the future dates.
    /// - Throws: ``KronosError/invalidOptions(_:)``, ``KronosError/invalidInput(_:)``,
    ///   ``KronosError/numericFailure(_:)``, or ``KronosError/cancelled``.
    public func forecast(
        _ history: CandleSeries, steps: Int, options: ForecastOptions = ForecastOptions(),
        progress: (@Sendable (ForecastProgress) -> Void)? = nil
    ) async throws(KronosError) -> Forecast {
        try await forecast([history], steps: steps, options: options, progress: progress)[0]
    }

    /// Forecasts several series of the same length as one batch (faster than one at a time: the
    /// weights are read once per step for all of them).
    public func forecast(
        _ histories: [CandleSeries], steps: Int, options: ForecastOptions = ForecastOptions(),
        progress: (@Sendable (ForecastProgress) -> Void)? = nil
    ) async throws(KronosError) -> [Forecast] {
        let plan = try plan(histories, steps: steps, options: options)
        let stop = StopFlag()
        let result: Result<[Forecast], KronosError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let work = UncheckedBox((self, plan, progress, continuation, stop))
                // A thread of its own: a forecast computes for seconds, which must not hold one
                // of the cooperative pool's few threads.
                let thread = Thread {
                    let (model, plan, progress, continuation, stop) = work.value
                    continuation.resume(
                        returning: Result { () throws(KronosError) in
                            try model.run(plan, progress: progress, cancelled: { stop.flag.load(ordering: .relaxed) })
                        })
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
        } onCancel: {
            stop.flag.store(true, ordering: .relaxed)
        }
        return try result.get()
    }

    /// The same forecast, computed on the calling thread (for callers without async).
    public func forecastSynchronously(
        _ history: CandleSeries, steps: Int, options: ForecastOptions = ForecastOptions(),
        progress: ((ForecastProgress) -> Void)? = nil
    ) throws(KronosError) -> Forecast {
        try forecastSynchronously([history], steps: steps, options: options, progress: progress)[0]
    }

    /// Several series of the same length as one batch, computed on the calling thread.
    public func forecastSynchronously(
        _ histories: [CandleSeries], steps: Int, options: ForecastOptions = ForecastOptions(),
        progress: ((ForecastProgress) -> Void)? = nil
    ) throws(KronosError) -> [Forecast] {
        try run(try plan(histories, steps: steps, options: options), progress: progress, cancelled: nil)
    }

    /// Several series as one batch, each with its own future dates (a command line's inputs on
    /// different calendars); the same draws as any other batch of these series.
    package func forecastSynchronously(
        _ histories: [CandleSeries], steps: Int, options: ForecastOptions, futureDates: [[Date]],
        progress: ((ForecastProgress) -> Void)? = nil
    ) throws(KronosError) -> [Forecast] {
        guard futureDates.count == histories.count else {
            throw .invalidOptions("\(futureDates.count) future date lists for \(histories.count) series")
        }
        return try run(
            try plan(histories, steps: steps, options: options, futureDates: futureDates), progress: progress,
            cancelled: nil)
    }

    /// The build of the engine this process runs: "x86-64-v3" (AVX2 / FMA kernels), "baseline" (any
    /// x86-64 processor, or `KRONOS_KERNELS=portable`), or "native" on other architectures.
    public static var engineBuild: String { Processor.engineName }

    /// The bundle's path.
    public var path: String { engine.path }
    /// The largest window a model may be run with.
    public static var maxWindow: Int { EngineLimits.maxWindow }
    /// The most paths (series × samples) one batch runs.
    public static var maxBatch: Int { EngineLimits.maxBatch }
    /// The most threads a model may ask for on this machine (4 per core, at least 8).
    public static var maxThreads: Int { EngineLimits.maxThreads }
    /// The matmul arithmetic a forecast asking for `requested` runs with (nil: the default).
    public func activations(_ requested: ActivationPrecision?) -> ActivationPrecision { engine.activations(requested) }
    /// The key / value cache precision a forecast asking for `requested` runs with (nil: the default).
    public func kvCache(_ requested: KVCachePrecision?) -> KVCachePrecision { engine.kvCache(requested) }
}

/// Everything a forecast needs, checked before any work.
struct ForecastPlan: Sendable {
    var histories: [CandleSeries]
    var futureTimes: [[Int64]]
    var tradingDays: [TradingDays?]
    var notes: [[String]]
    var warnings: [[String]]
    var settings: ForecastSettings
}

extension KronosModel {
    func plan(_ histories: [CandleSeries], steps: Int, options o: ForecastOptions, futureDates each: [[Date]]? = nil)
        throws(KronosError) -> ForecastPlan
    {
        guard let first = histories.first else { throw .invalidInput("no series to forecast") }
        let window = o.maxContext ?? maxContext
        guard (1...EngineLimits.maxWindow).contains(window) else {
            throw .invalidOptions("maxContext must be in 1...\(EngineLimits.maxWindow), found \(window)")
        }
        guard steps >= 1 else { throw .invalidOptions("steps must be at least 1, found \(steps)") }
        guard steps <= window else {
            throw .invalidOptions(
                "\(steps) steps exceed the model's \(window)-row window: the tokenizer decodes one window, as the "
                    + "reference does"
            )
        }
        guard o.samples >= 1 else { throw .invalidOptions("samples must be at least 1, found \(o.samples)") }
        guard histories.count * o.samples <= EngineLimits.maxBatch else {
            throw .invalidOptions(
                "\(histories.count) series × \(o.samples) samples: at most \(EngineLimits.maxBatch) paths run as one "
                    + "batch"
            )
        }
        guard o.temperature > 0, o.temperature.isFinite else {
            throw .invalidOptions("temperature must be a positive number, found \(o.temperature)")
        }
        guard o.topK >= 0 else { throw .invalidOptions("topK must be 0 (off) or more, found \(o.topK)") }
        guard o.topP > 0, o.topP <= 1 else { throw .invalidOptions("topP must be in (0, 1], found \(o.topP)") }
        guard o.clip > 0, o.clip.isFinite else {
            throw .invalidOptions("clip must be a positive number, found \(o.clip)")
        }
        if let seeds = o.seriesSeeds, seeds.count != histories.count {
            throw .invalidOptions("seriesSeeds has \(seeds.count) seeds for \(histories.count) series")
        }
        for h in histories.dropFirst() where h.count != first.count {
            throw .invalidInput(
                "\(h.name) has \(h.count) candles but \(first.name) has \(first.count): series forecast together need "
                    + "the same length"
            )
        }
        var plan = ForecastPlan(
            histories: histories, futureTimes: [], tradingDays: [], notes: [], warnings: [],
            settings: ForecastSettings(
                predictionLength: steps, maxContext: window,
                sampling: SamplingSettings(temperature: Float(o.temperature), topK: o.topK, topP: Float(o.topP)),
                samples: o.samples, seed: o.seed))
        plan.settings.clip = Float(o.clip)
        plan.settings.seriesSeeds = o.seriesSeeds
        plan.settings.cache = o.cache
        plan.settings.activations = o.activations
        plan.settings.kvCache = o.kvCache
        for (k, h) in histories.enumerated() {
            var notes = h.notes.map { "\(h.name): \($0)" }, warnings = h.warnings.map { "\(h.name): \($0)" }
            if let dates = each?[k] ?? o.futureDates {
                guard dates.count == steps else {
                    throw .invalidOptions("futureDates has \(dates.count) dates for \(steps) steps")
                }
                let offset = Double(h.timeZone.secondsFromGMT())
                var times = [Int64](), last = h.table.times.last!
                for (i, d) in dates.enumerated() {
                    let s = d.timeIntervalSince1970.rounded(.down) + offset
                    guard s.isFinite, abs(s) < 253_402_300_800, Int64(s) > last else {
                        throw .invalidOptions(
                            "futureDates[\(i)] (\(d)) is not after the \(i == 0 ? "last candle" : "date before it")")
                    }
                    last = Int64(s)
                    times.append(last)
                }
                plan.futureTimes.append(times)
                plan.tradingDays.append(nil)
            } else {
                let inferred = TradingCalendar.infer(h.table)
                let days = o.tradingDays ?? TradingDays(inferred.calendar)
                if o.tradingDays == nil, days == .weekdays {
                    notes.append(
                        "\(h.name): weekdays only (inferred: \(inferred.reason)); future dates skip Saturday and Sunday"
                    )
                }
                let step: Int64
                if let i = o.interval {
                    guard i >= 1, i < 1e12 else {
                        throw .invalidOptions("interval must be at least 1 second, found \(i)")
                    }
                    step = Int64(i)
                } else {
                    step = Candles.commonInterval(h.table.times)
                }
                warnings += TradingCalendar.gapWarnings(h.table, step: step, calendar: days.kind).map {
                    "\(h.name): \($0)"
                }
                do {
                    plan.futureTimes.append(
                        try TradingCalendar.future(after: h.table, step: step, count: steps, calendar: days.kind))
                } catch {
                    throw KronosError(error)
                }
                plan.tradingDays.append(days)
            }
            if h.count > window {
                notes.append(
                    "\(h.name): \(h.count) candles exceed the \(window)-row window: the model sees the last \(window) "
                        + "(the tokenizer encodes all)"
                )
            }
            plan.notes.append(notes)
            plan.warnings.append(warnings)
        }
        return plan
    }

    func run(_ plan: ForecastPlan, progress: ((ForecastProgress) -> Void)?, cancelled: (() -> Bool)?)
        throws(KronosError) -> [Forecast]
    {
        let inputs = zip(plan.histories, plan.futureTimes).map { h, future in
            SeriesInput(
                values: h.table.values, stamps: h.table.times.map { TimeStamp(wallClockSeconds: $0) },
                futureStamps: future.map { TimeStamp(wallClockSeconds: $0) })
        }
        let results: [SeriesForecast]
        do {
            results = try engine.forecast(
                inputs, settings: plan.settings, trace: nil,
                progress: progress.map { p in
                    { event in if case let .step(done, total) = event { p(ForecastProgress(step: done, steps: total)) }
                    }
                }, cancelled: cancelled)
        } catch { throw KronosError(error) }
        return results.enumerated().map { k, r in
            let h = plan.histories[k]
            let offset = TimeInterval(h.timeZone.secondsFromGMT())
            let dates = plan.futureTimes[k].map { Date(timeIntervalSince1970: TimeInterval($0) - offset) }
            func candles(_ v: [Float]) -> [Candle] {
                dates.enumerated().map { t, d in
                    Candle(
                        date: d, open: Double(v[t * 6]), high: Double(v[t * 6 + 1]), low: Double(v[t * 6 + 2]),
                        close: Double(v[t * 6 + 3]),
                        volume: Double(v[t * 6 + 4]), amount: Double(v[t * 6 + 5]))
                }
            }
            let lastClose = h.table.values[(h.count - 1) * 6 + 3]
            let up = (0..<dates.count).map { t in
                Double(r.paths.filter { $0[t * 6 + 3] > lastClose }.count) / Double(r.paths.count)
            }
            return Forecast(
                name: h.name, dates: dates, mean: candles(r.mean), paths: r.paths.map(candles), probabilityUp: up,
                lastClose: Double(lastClose), tradingDays: plan.tradingDays[k], notes: plan.notes[k],
                warnings: plan.warnings[k])
        }
    }
}

/// Hands values that are only read, or used once, to the forecast's thread.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Set when the awaiting task is cancelled; read by the forecast before every step.
private final class StopFlag: Sendable {
    let flag = Atomic<Bool>(false)
}
