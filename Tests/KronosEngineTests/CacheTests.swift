import Foundation
import KronosConvert
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif
import Testing

@Suite struct CacheTests {
    /// Every step of a long run: the KV-cached forecast sees exactly (bitwise) the logits of
    /// recomputing the window, before and after the window starts sliding.
    /// (q8 and q4 with int8 activations too: the integer path computes the same numbers for one row and many;
    /// and with an f16 key / value cache, which prefill and decode steps read alike.)
    @Test(arguments: [
        (QuantizeChoice.f32, false, KVCachePrecision.f32), (.q8, false, .f32), (.q4, false, .f32), (.q8, true, .f32),
        (.q4, true, .f32),
        (.f32, false, .f16), (.q8, false, .f16),
    ])
    func cacheEqualsRecomputeOnEveryStep(quantize: QuantizeChoice, integerActivations: Bool, kvCache: KVCachePrecision)
        throws
    {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: quantize)
        let model = try ForecastEngine(path: bundle)
        let T = 40, P = 110, window = 128  // slides after 88 steps
        let input = try sampleInput(rows: T, future: P)
        var cached = ForecastSettings(
            predictionLength: P, maxContext: window, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
            samples: 3, seed: 11)
        cached.activations = integerActivations ? .int8 : .f32
        cached.kvCache = kvCache
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
        if integerActivations {  // the integer path was taken: its logits are not the float path's
            var float = cached
            float.activations = .f32
            var t3 = ForecastTrace()
            _ = try model.forecast([input], settings: float, trace: &t3)
            #expect(t3.stepS1Logits[0] != t1.stepS1Logits[0])
        }
        if kvCache == .f16 {  // the f16 cache was used: its logits are not the f32 cache's
            var f32 = cached
            f32.kvCache = .f32
            var t3 = ForecastTrace()
            _ = try model.forecast([input], settings: f32, trace: &t3)
            #expect(t3.stepS1Logits[0] != t1.stepS1Logits[0])
        }
        // The sampled paths actually differ from each other (the test exercises sampling, not greedy).
        #expect(Set(a[0].s1).count > 1)
    }

    /// approx-slide is the exact cache until the window slides (bitwise), and an approximation after:
    /// the logits move on every sliding step (how far is measured by `verify --cache approx-slide`).
    @Test func approxSlideIsExactUntilTheWindowSlides() throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32)
        let model = try ForecastEngine(path: bundle)
        let T = 40, P = 40, window = 64  // slides from step 25
        let input = try sampleInput(rows: T, future: P)
        var exact = ForecastSettings(
            predictionLength: P, maxContext: window, sampling: SamplingSettings(temperature: 1, topK: 1, topP: 1),
            samples: 1, seed: 3)
        var approx = exact
        exact.cache = .exact; approx.cache = .approxSlide
        var t1 = ForecastTrace(), t2 = ForecastTrace()
        _ = try model.forecast([input], settings: exact, trace: &t1)
        _ = try model.forecast([input], settings: approx, trace: &t2)
        let firstSlide = window - T + 1  // step i uses tokens ..< T + i; it slides once T + i > window
        for i in 0..<firstSlide {
            #expect(t1.stepS1Logits[i] == t2.stepS1Logits[i], "step \(i): before the slide approx-slide must be exact")
        }
        let moved = (firstSlide..<P).filter { t1.stepS1Logits[$0] != t2.stepS1Logits[$0] }
        #expect(
            moved.count == P - firstSlide,
            "after the slide the approximation differs from the exact window on every step")
    }

    /// The samples of a series share its context rows (computed and cached once per series, private
    /// rows per sample after it): every path's logits equal running that path alone, bit for bit, in
    /// every cache mode, before and after the window slides, with a context shorter and longer than it.
    @Test(arguments: [CacheMode.exact, .approxSlide, .recompute], [ActivationPrecision.f32, .int8])
    func sharedContextEqualsSeparateSequences(cache: CacheMode, activations: ActivationPrecision) throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .q8)
        let model = try ForecastEngine(path: bundle)
        for (T, P, window) in [(40, 30, 48), (70, 20, 64)] {  // slides from step 9; context longer than the window
            let input = try sampleInput(rows: T, future: P)
            let ids = model.encode(ForecastEngine.normalize(input.values, rows: T, clip: 5).normalized, rows: T)
            // Five different paths (a decode step takes 4 at a time, then 1), deterministic, within the vocabularies.
            let probe = model.teacherForcedLogits(
                contextS1: ids.s1, contextS2: ids.s2, stamps: input.stamps + input.futureStamps,
                pathS1: [0], pathS2: [0], maxContext: window, activations: activations, kvCache: .f32)
            let V1 = probe.s1[0].count, V2 = probe.s2[0].count
            let paths1 = (0..<5).map { k in (0..<P).map { ($0 * 7 + k * 13 + 1) % V1 } }
            let paths2 = (0..<5).map { k in (0..<P).map { ($0 * 5 + k * 3 + 2) % V2 } }
            let stamps = input.stamps + input.futureStamps
            let together = model.teacherForcedLogits(
                contextS1: ids.s1, contextS2: ids.s2, stamps: stamps, pathsS1: paths1, pathsS2: paths2,
                maxContext: window, cache: cache, activations: activations, kvCache: .f32)
            for k in 0..<5 {
                let alone = model.teacherForcedLogits(
                    contextS1: ids.s1, contextS2: ids.s2, stamps: stamps, pathS1: paths1[k], pathS2: paths2[k],
                    maxContext: window, cache: cache, activations: activations, kvCache: .f32)
                for i in 0..<P {
                    #expect(
                        together.s1[k][i] == alone.s1[i],
                        "T \(T) window \(window) path \(k) step \(i): s1 logits differ")
                    #expect(
                        together.s2[k][i] == alone.s2[i],
                        "T \(T) window \(window) path \(k) step \(i): s2 logits differ")
                }
            }
            // The paths differ, so their logits do after the first step (the test is not vacuous).
            #expect(together.s1[0][P - 1] != together.s1[1][P - 1])
        }
    }

    /// The tokenizer decodes a forecast's window as the series' context (once) and each sample's
    /// generated rows after it: equal, bit for bit, to decoding every whole sequence.
    @Test(arguments: [QuantizeChoice.f32, .q8])
    func sharedPrefixDecodeEqualsWholeSequences(quantize: QuantizeChoice) throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: quantize)
        let model = try ForecastEngine(path: bundle)
        let input = try sampleInput(rows: 60, future: 1)
        let ids = model.encode(ForecastEngine.normalize(input.values, rows: 60, clip: 5).normalized, rows: 60)
        for (m, r) in [(41, 7), (0, 9), (30, 1)] {
            let prefix1 = Array(ids.s1.prefix(m)), prefix2 = Array(ids.s2.prefix(m))
            // Three different suffixes drawn from the encoded rows (valid ids).
            var suffixes1 = [[Int]](), suffixes2 = [[Int]]()
            for k in 0..<3 {
                var a = [Int](), b = [Int]()
                for t in 0..<r {
                    a.append(ids.s1[(k * 11 + t * 7 + 3) % 60])
                    b.append(ids.s2[(k * 5 + t * 13 + 1) % 60])
                }
                suffixes1.append(a); suffixes2.append(b)
            }
            let shared = model.decode(
                prefixS1: prefix1, prefixS2: prefix2, suffixesS1: suffixes1, suffixesS2: suffixes2)
            for k in 0..<3 {
                let whole = model.decode(s1: [prefix1 + suffixes1[k]], s2: [prefix2 + suffixes2[k]])
                let expected: [UInt32] = whole.suffix(r * 6).map { $0.bitPattern }
                let got: [UInt32] = shared[k].map { $0.bitPattern }
                #expect(got == expected, "prefix \(m) suffix \(r) sequence \(k)")
            }
            #expect(r == 1 || shared[0] != shared[1])
        }
    }
}
