import Foundation
import Kronos
import KronosConvert
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif
import Testing

/// One model serving many forecasts at once: nothing a forecast writes is shared with another
/// (CI runs this suite under ThreadSanitizer: `swift test --sanitize=thread --filter ConcurrencyTests`).
@Suite struct ConcurrencyTests {
    /// A forecast's job: which rows of the sample series, and the settings.
    struct Job: Sendable {
        let offset: Int, rows: Int
        let settings: ForecastSettings
    }

    /// 8 forecasts of different series and settings on one model, run at the same time, each equal
    /// bit for bit to the same forecast run alone. The window is the bundle's 64 rows, so the model's
    /// rotary table covers 64 positions: the approx-slide jobs and the inputs longer than the window
    /// run at positions past it (where a table grown on demand was written while others read it).
    @Test func concurrentForecastsEqualSequentialOnes() throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .q8, maxContext: 64)
        // The concurrent forecasts run on a freshly loaded model (nothing grown or warmed by a run
        // before), the sequential ones on another.
        let model = try ForecastEngine(path: bundle, threads: 2)
        let reference = try ForecastEngine(path: bundle, threads: 2)
        func settings(
            _ P: Int, samples: Int, seed: UInt64, cache: CacheMode, activations: ActivationPrecision,
            kv: KVCachePrecision
        )
            -> ForecastSettings
        {
            var s = ForecastSettings(
                predictionLength: P, maxContext: 64, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
                samples: samples, seed: seed)
            s.cache = cache; s.activations = activations; s.kvCache = kv
            return s
        }
        let jobs = [
            Job(
                offset: 0, rows: 40,
                settings: settings(60, samples: 2, seed: 1, cache: .approxSlide, activations: .f32, kv: .f32)),
            Job(
                offset: 100, rows: 50,
                settings: settings(60, samples: 1, seed: 2, cache: .approxSlide, activations: .int8, kv: .f16)),
            Job(
                offset: 200, rows: 150,
                settings: settings(12, samples: 3, seed: 3, cache: .exact, activations: .f32, kv: .f16)),
            Job(
                offset: 300, rows: 30,
                settings: settings(20, samples: 4, seed: 4, cache: .exact, activations: .int8, kv: .f32)),
            Job(
                offset: 350, rows: 120,
                settings: settings(40, samples: 2, seed: 5, cache: .approxSlide, activations: .f32, kv: .f16)),
            Job(
                offset: 400, rows: 64,
                settings: settings(16, samples: 1, seed: 6, cache: .recompute, activations: .f32, kv: .f32)),
            Job(
                offset: 500, rows: 200,
                settings: settings(24, samples: 2, seed: 7, cache: .exact, activations: .int8, kv: .f16)),
            Job(
                offset: 600, rows: 45,
                settings: settings(50, samples: 3, seed: 8, cache: .approxSlide, activations: .int8, kv: .f32)),
        ]
        let table = try Candles.read(path: goldenDirectory + "/sample_4h.csv")
        func input(_ job: Job) -> SeriesInput {
            let times = Array(table.times[job.offset..<(job.offset + job.rows)])
            let future = (1...job.settings.predictionLength).map {
                TimeStamp(wallClockSeconds: times.last! + Int64($0) * 14400)
            }
            return SeriesInput(
                values: Array(table.values[(job.offset * 6)..<((job.offset + job.rows) * 6)]),
                stamps: times.map { TimeStamp(wallClockSeconds: $0) },
                futureStamps: future)
        }
        let inputs = jobs.map(input)
        // All at once, each on its own thread (more forecasts than cores: they interleave).
        let results = Results(count: jobs.count)
        let group = DispatchGroup()
        for i in jobs.indices {
            group.enter()
            let job = UncheckedJob(model: model, input: inputs[i], settings: jobs[i].settings)
            Thread.detachNewThread {
                results.set(i, Result { try job.model.forecast([job.input], settings: job.settings)[0] })
                group.leave()
            }
        }
        group.wait()
        // Alone, one after the other.
        let alone = try jobs.indices.map { try reference.forecast([inputs[$0]], settings: jobs[$0].settings)[0] }
        for i in jobs.indices {
            let together = try #require(try results.get(i)?.get(), "job \(i) did not finish")
            #expect(together.s1 == alone[i].s1 && together.s2 == alone[i].s2, "job \(i): the generated ids differ")
            #expect(together.mean.map(\.bitPattern) == alone[i].mean.map(\.bitPattern), "job \(i): the mean differs")
            #expect(
                together.paths.flatMap { $0 }.map(\.bitPattern) == alone[i].paths.flatMap { $0 }.map(\.bitPattern),
                "job \(i): the paths differ")
        }
        // The test reaches past the model's rotary table (64 positions): approx-slide over 100+ rows.
        #expect(jobs.contains { $0.rows + $0.settings.predictionLength > 64 && $0.settings.cache == .approxSlide })
        #expect(jobs.contains { $0.rows > 64 })
    }

    /// The rotary rows past the model's table are the numbers the table would hold: a forecast on a
    /// bundle whose table covers every position (window 512) equals, bit for bit, one whose table
    /// stops at 64 when both run the same 64-row window.
    @Test func rotaryRowsPastTheTableEqualTableRows() throws {
        let small = try ForecastEngine(
            path: try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32, maxContext: 64),
            threads: 1)
        let large = try ForecastEngine(
            path: try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32, maxContext: 512),
            threads: 1)
        let input = try sampleInput(rows: 100, future: 40)
        var s = ForecastSettings(
            predictionLength: 40, maxContext: 64, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
            samples: 2, seed: 9)
        s.cache = .approxSlide
        var t1 = ForecastTrace(), t2 = ForecastTrace()
        let a = try small.forecast([input], settings: s, trace: &t1)[0]
        let b = try large.forecast([input], settings: s, trace: &t2)[0]
        #expect(t1.contextS1 == t2.contextS1 && t1.contextS2 == t2.contextS2)
        #expect(t1.stepS1Logits.flatMap { $0 }.map(\.bitPattern) == t2.stepS1Logits.flatMap { $0 }.map(\.bitPattern))
        #expect(a.mean.map(\.bitPattern) == b.mean.map(\.bitPattern))
    }
}

/// The results of the concurrent jobs, by index.
private final class Results: @unchecked Sendable {
    private var values: [Result<SeriesForecast, any Error>?]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<SeriesForecast, any Error>) { lock.lock(); values[i] = r; lock.unlock() }
    func get(_ i: Int) -> Result<SeriesForecast, any Error>? { lock.lock(); defer { lock.unlock() }; return values[i] }
}

private struct UncheckedJob: @unchecked Sendable {
    let model: ForecastEngine
    let input: SeriesInput
    let settings: ForecastSettings
}
