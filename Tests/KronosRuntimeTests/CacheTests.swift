import Foundation
import KronosConvert
import KronosRuntime
import Testing

@Suite struct CacheTests {
    /// Every step of a long run: the KV-cached forecast sees exactly (bitwise) the logits of
    /// recomputing the window, before and after the window starts sliding.
    @Test(arguments: [QuantizeChoice.f32, .q8, .q4])
    func cacheEqualsRecomputeOnEveryStep(quantize: QuantizeChoice) throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: quantize)
        let model = try KronosModel(path: bundle)
        let table = try Candles.read(path: goldenDirectory + "/sample_4h.csv")
        let T = 40, P = 110, window = 128  // slides after 88 steps
        let times = Array(table.times.prefix(T))
        let future = (1...P).map { Candles.stamp(times.last! + Int64($0) * 14400) }
        let input = SeriesInput(values: Array(table.values.prefix(T * 6)), stamps: times.map(Candles.stamp), futureStamps: future)
        var cached = ForecastSettings(predictionLength: P, maxContext: window, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
                                      samples: 3, seed: 11)
        var recompute = cached
        recompute.recomputeEveryStep = true
        cached.recomputeEveryStep = false
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
}
