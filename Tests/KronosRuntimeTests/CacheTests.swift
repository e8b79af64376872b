import Foundation
import KronosConvert
import KronosRuntime
import Testing

/// The first `rows` candles of golden/sample_4h.csv and the stamps of `future` 4-hour rows after them.
func sampleInput(rows T: Int, future P: Int) throws -> SeriesInput {
    let table = try Candles.read(path: goldenDirectory + "/sample_4h.csv")
    let times = Array(table.times.prefix(T))
    let future = (1...P).map { Candles.stamp(times.last! + Int64($0) * 14400) }
    return SeriesInput(values: Array(table.values.prefix(T * 6)), stamps: times.map(Candles.stamp), futureStamps: future)
}

@Suite struct CacheTests {
    /// Every step of a long run: the KV-cached forecast sees exactly (bitwise) the logits of
    /// recomputing the window, before and after the window starts sliding.
    @Test(arguments: [QuantizeChoice.f32, .q8, .q4])
    func cacheEqualsRecomputeOnEveryStep(quantize: QuantizeChoice) throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: quantize)
        let model = try KronosModel(path: bundle)
        let T = 40, P = 110, window = 128  // slides after 88 steps
        let input = try sampleInput(rows: T, future: P)
        var cached = ForecastSettings(predictionLength: P, maxContext: window, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
                                      samples: 3, seed: 11)
        var recompute = cached
        recompute.cache = .recompute
        cached.cache = .exact
        var t1 = ForecastTrace(), t2 = ForecastTrace()
        let a = try model.forecast([input], settings: cached, trace: &t1)
        let b = try model.forecast([input], settings: recompute, trace: &t2)
        #expect(t1.stepS1Logits.count == P)
        for i in 0..<P {
            #expect(t1.stepS1Logits[i] == t2.stepS1Logits[i], "step \(i): s1 logits differ")
            #expect(t1.stepS2Logits[i] == t2.stepS2Logits[i], "step \(i): s2 logits differ")
        }
        #expect(a[0].s1 == b[0].s1 && a[0].s2 == b[0].s2)
        #expect(a[0].mean == b[0].mean)
        // The sampled paths actually differ from each other (the test exercises sampling, not greedy).
        #expect(Set(a[0].s1).count > 1)
    }

    /// approx-slide is the exact cache until the window slides (bitwise), and an approximation after:
    /// the logits move, but stay close (its drift is measured by `verify --cache approx-slide`).
    @Test func approxSlideIsExactUntilTheWindowSlides() throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32)
        let model = try KronosModel(path: bundle)
        let T = 40, P = 40, window = 64  // slides from step 25
        let input = try sampleInput(rows: T, future: P)
        var exact = ForecastSettings(predictionLength: P, maxContext: window, sampling: SamplingSettings(temperature: 1, topK: 1, topP: 1),
                                     samples: 1, seed: 3)
        var approx = exact
        exact.cache = .exact; approx.cache = .approxSlide
        var t1 = ForecastTrace(), t2 = ForecastTrace()
        _ = try model.forecast([input], settings: exact, trace: &t1)
        _ = try model.forecast([input], settings: approx, trace: &t2)
        let firstSlide = window - T + 1   // step i uses tokens ..< T + i; it slides once T + i > window
        for i in 0..<firstSlide {
            #expect(t1.stepS1Logits[i] == t2.stepS1Logits[i], "step \(i): before the slide approx-slide must be exact")
        }
        let moved = (firstSlide..<P).filter { t1.stepS1Logits[$0] != t2.stepS1Logits[$0] }
        #expect(moved.count == P - firstSlide, "after the slide the approximation differs from the exact window on every step")
    }
}
