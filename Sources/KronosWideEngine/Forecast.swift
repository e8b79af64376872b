// The forecast procedure (ARCHITECTURE.md §5) in five stages: check the inputs, encode (normalize,
// tokenize), generate (autoregressive, exact KV caching, recompute once the window slides), decode,
// summarise (average the samples, denormalize).
import Foundation
import KronosBundle

extension ForecastEngine {
    /// Normalization of ARCHITECTURE.md §5: per column mean and population std over the rows,
    /// x = clip((x - mean) / (std + 1e-5), -clip, clip).
    public static func normalize(_ x: [Float], rows: Int, clip: Float) -> (
        normalized: [Float], mean: [Float], std: [Float]
    ) {
        var mean = [Float](repeating: 0, count: 6), std = [Float](repeating: 0, count: 6)
        for c in 0..<6 {
            var s = 0.0
            for t in 0..<rows { s += Double(x[t * 6 + c]) }
            let m = s / Double(rows)
            var v = 0.0
            for t in 0..<rows { let d = Double(x[t * 6 + c]) - m; v += d * d }
            mean[c] = Float(m)
            std[c] = Float((v / Double(rows)).squareRoot())
        }
        var out = [Float](repeating: 0, count: rows * 6)
        for t in 0..<rows {
            for c in 0..<6 {
                let z = (x[t * 6 + c] - mean[c]) / (std[c] + 1e-5)
                out[t * 6 + c] = min(clip, max(-clip, z))
            }
        }
        return (out, mean, std)
    }

    /// Largest model window a forecast takes (EngineLimits.maxWindow).
    public static var maxWindow: Int { EngineLimits.maxWindow }
    /// Most sequences (series × samples) in one batch (EngineLimits.maxBatch).
    public static var maxBatch: Int { EngineLimits.maxBatch }

    /// Forecasts every series (same length required) as one batch of series × samples sequences:
    /// check -> encode -> generate -> decode -> summarise, each a function below.
    /// `cancelled` is asked before every step: true stops the forecast with RuntimeError.cancelled.
    public func forecast(
        _ inputs: [SeriesInput], settings: ForecastSettings, trace: UnsafeMutablePointer<ForecastTrace>? = nil,
        progress: ((ForecastEvent) -> Void)? = nil, cancelled: (() -> Bool)? = nil
    ) throws(RuntimeError) -> [SeriesForecast] {
        try check(inputs, settings: settings)
        var batch = try encode(inputs, settings: settings, trace: trace)
        try generate(&batch, settings: settings, trace: trace, progress: progress, cancelled: cancelled)
        return summarise(batch, decoded: decode(batch, window: settings.maxContext))
    }

    /// 1. Every value the model reads from the caller is checked before it indexes a table or
    /// enters the arithmetic. Messages use the settings' names (ForecastSettings), not a CLI's.
    func check(_ inputs: [SeriesInput], settings: ForecastSettings) throws(RuntimeError) {
        guard let T = inputs.first?.rows, T >= 1 else { throw .options("no input rows") }
        let P = settings.predictionLength, S = settings.samples, window = settings.maxContext
        guard P >= 1 else { throw .options("predictionLength must be at least 1, found \(P)") }
        guard S >= 1 else { throw .options("samples must be at least 1, found \(S)") }
        if let seeds = settings.seriesSeeds, seeds.count != inputs.count {
            throw .options("seriesSeeds has \(seeds.count) seeds for \(inputs.count) series")
        }
        guard window >= 1, window <= Self.maxWindow else {
            throw .options("maxContext (the model window) must be in 1...\(Self.maxWindow), found \(window)")
        }
        guard P <= window else {
            throw .options(
                "predictionLength \(P) exceeds the model window of \(window) rows (maxContext): the tokenizer "
                    + "decodes one window, as the reference does")
        }
        guard inputs.count <= Self.maxBatch, S <= Self.maxBatch / inputs.count else {
            throw .options(
                "\(inputs.count) series × \(S) samples = "
                    + "\(inputs.count.multipliedReportingOverflow(by: S).partialValue) sequences; at most "
                    + "\(Self.maxBatch) run as one batch")
        }
        for (i, s) in inputs.enumerated() {
            guard s.rows == T, s.futureStamps.count == P, s.values.count == T * 6, s.stamps.count == T else {
                throw .options(
                    "series \(i + 1) has \(s.rows) rows, \(s.values.count) values and \(s.futureStamps.count) future "
                        + "stamps; every series of a batch needs \(T), \(T * 6) and \(P)")
            }
            if let r = s.values.firstIndex(where: { !$0.isFinite }) {
                throw .options(
                    "series \(i + 1), row \(r / 6), column \(SeriesInput.columns[r % 6]): \(s.values[r]) is not a "
                        + "finite number")
            }
            for (k, stamp) in (s.stamps + s.futureStamps).enumerated() where !stamp.isValid {
                throw .options(
                    "series \(i + 1), \(k < T ? "row \(k)" : "future row \(k - T)"): time features \(stamp) outside "
                        + "their tables (minute 0...59, hour 0...23, weekday 0...6, day 0...31, month 0...12)")
            }
        }
    }

    /// The token ids of every sequence of a batch (series-major: sequence b = series b / S, sample
    /// b % S) and what summarising needs from the encoding.
    struct TokenBatch {
        let rows: Int  // T, context rows per series
        let steps: Int  // P
        let samples: Int  // S
        /// Per series: the normalized context [T, 6] and its column means and spreads [6].
        var norms: [(normalized: [Float], mean: [Float], std: [Float])] = []
        var s1: [[Int]] = [], s2: [[Int]] = []  // [batch][T (+ generated)]
        var stamps: [[TimeStamp]] = []  // [batch][T + P]
        var count: Int { s1.count }
    }

    /// 2. Normalize and encode each series once; every sample starts from the same ids.
    func encode(
        _ inputs: [SeriesInput], settings: ForecastSettings, trace: UnsafeMutablePointer<ForecastTrace>?
    ) throws(RuntimeError) -> TokenBatch {
        let T = inputs[0].rows, S = settings.samples
        var batch = TokenBatch(rows: T, steps: settings.predictionLength, samples: S)
        for input in inputs {
            let n = Self.normalize(input.values, rows: T, clip: settings.clip)
            for c in 0..<6 where !(n.mean[c].isFinite && (n.std[c] + 1e-5).isFinite) {
                throw .options(
                    "series \(batch.norms.count + 1), column \(SeriesInput.columns[c]): the mean or spread of the "
                        + "values (\(n.mean[c]), \(n.std[c])) overflows 32-bit floats; rescale the input")
            }
            batch.norms.append(n)
            let ids = tokenizer.encode(n.normalized, rows: T)
            for _ in 0..<S {
                batch.s1.append(ids.s1); batch.s2.append(ids.s2); batch.stamps.append(input.stamps + input.futureStamps)
            }
        }
        if let trace {
            trace.pointee.normalized = batch.norms[0].normalized; trace.pointee.mean = batch.norms[0].mean
            trace.pointee.std = batch.norms[0].std
            trace.pointee.contextS1 = batch.s1[0]; trace.pointee.contextS2 = batch.s2[0]
            let keep = min(T, settings.maxContext)
            trace.pointee.contextReconstruction = tokenizer.decode(
                s1: [Array(batch.s1[0].suffix(keep))], s2: [Array(batch.s2[0].suffix(keep))])
        }
        return batch
    }

    /// 3. Autoregressive generation: P steps, each appending one (s1, s2) pair to every sequence.
    /// The cache is exact while the window starts at position 0; once it slides, the window is
    /// recomputed from scratch (as the reference does at every step) unless the approx-slide
    /// approximation was asked for. The session's caches are freed when this returns.
    func generate(
        _ batch: inout TokenBatch, settings: ForecastSettings, trace: UnsafeMutablePointer<ForecastTrace>?,
        progress: ((ForecastEvent) -> Void)?, cancelled: (() -> Bool)?
    ) throws(RuntimeError) {
        let T = batch.rows, P = batch.steps, S = batch.samples, B = batch.count, window = settings.maxContext
        let V1 = predictor.config.s1Vocabulary, V2 = predictor.config.s2Vocabulary
        // One stream for the whole batch, or one per series (ForecastSettings.seriesSeeds): sequence b
        // draws from streams[b / S] when there is one per series.
        var streams = (settings.seriesSeeds ?? [settings.seed]).map { KronosRNG(seed: $0) }
        let perSeries = settings.seriesSeeds != nil
        // The S samples of a series share its T context tokens: their rows are computed and cached once.
        // The window never holds more than the rows there are: a bundle claiming a huge max
        // context costs memory for the rows a run uses, not for the claim.
        let session = PredictorSession(
            model: predictor, batch: B, perGroup: S, sharedTokens: T, capacity: min(window, T + P),
            privateRows: P, activations: settings.activations, kvCache: settings.kvCache)
        // Everything a step needs is allocated here, once (the step itself allocates nothing).
        let sampler = Sampler(capacity: max(V1, V2))
        var picks1 = [Int](repeating: 0, count: B), picks2 = [Int](repeating: 0, count: B)
        for b in 0..<B { batch.s1[b].reserveCapacity(T + P); batch.s2[b].reserveCapacity(T + P) }
        /// Throws when a logit is not finite; else draws one id per sequence from logits [B, V].
        func pick(_ logits: [Float], _ V: Int, _ name: String, step i: Int, into picks: inout [Int])
            throws(RuntimeError)
        {
            if let bad = logits.prefix(B * V).firstIndex(where: { !$0.isFinite }) {
                throw .model(
                    "step \(i + 1), sequence \(bad / V + 1): the \(name) logits are not finite (\(logits[bad])); "
                        + "the input or the bundle's weights overflow 32-bit floats")
            }
            logits.withUnsafeBufferPointer { l in
                for b in 0..<B {
                    picks[b] = sampler.sample(
                        l.baseAddress! + b * V, V, settings.sampling, rng: &streams[perSeries ? b / S : 0])
                }
            }
        }
        for i in 0..<P {
            if let cancelled, cancelled() { throw .cancelled }
            session.advance(
                to: T + i, s1: batch.s1, s2: batch.s2, stamps: batch.stamps, window: window, mode: settings.cache)
            try pick(session.s1Logits, V1, "s1", step: i, into: &picks1)
            session.computeS2Logits(picks: picks1)
            try pick(session.s2Logits, V2, "s2", step: i, into: &picks2)
            if let trace {
                trace.pointee.stepS1Logits.append(Array(session.s1Logits[0..<V1]))
                trace.pointee.stepS2Logits.append(Array(session.s2Logits[0..<V2]))
            }
            for b in 0..<B { batch.s1[b].append(picks1[b]); batch.s2[b].append(picks2[b]) }
            progress?(.step(done: i + 1, total: P))
        }
    }

    /// 4. Decode the last min(T + P, window) tokens of every sequence, keep the last P rows:
    /// normalized paths [batch][P, 6]. The context part of that window is the same for every
    /// sample of a series: it is decoded once per series.
    func decode(_ batch: TokenBatch, window: Int) -> [[Float]] {
        let T = batch.rows, P = batch.steps, S = batch.samples
        let keep = min(T + P, window)
        var decoded = [[Float]]()
        for k in batch.norms.indices {
            let first = k * S
            decoded += tokenizer.decode(
                prefixS1: Array(batch.s1[first][(T + P - keep)..<T]),
                prefixS2: Array(batch.s2[first][(T + P - keep)..<T]),
                suffixesS1: (first..<(first + S)).map { Array(batch.s1[$0][T...]) },
                suffixesS2: (first..<(first + S)).map { Array(batch.s2[$0][T...]) })
        }
        return decoded
    }

    /// 5. Per series: the mean of its samples' normalized paths, then every path and the mean
    /// denormalized with the series' own mean and spread.
    func summarise(_ batch: TokenBatch, decoded: [[Float]]) -> [SeriesForecast] {
        let P = batch.steps, S = batch.samples
        var results = [SeriesForecast]()
        for (k, norm) in batch.norms.enumerated() {
            var mean = [Float](repeating: 0, count: P * 6)
            var paths = [[Float]]()
            for j in 0..<S {
                let b = k * S + j
                var path = [Float](repeating: 0, count: P * 6)
                for t in 0..<P {
                    for c in 0..<6 {
                        let v = decoded[b][t * 6 + c]
                        mean[t * 6 + c] += v
                        path[t * 6 + c] = v * (norm.std[c] + 1e-5) + norm.mean[c]
                    }
                }
                paths.append(path)
            }
            for t in 0..<P {
                for c in 0..<6 { mean[t * 6 + c] = mean[t * 6 + c] / Float(S) * (norm.std[c] + 1e-5) + norm.mean[c] }
            }
            results.append(
                SeriesForecast(
                    mean: mean, paths: paths,
                    s1: (0..<S).map { Array(batch.s1[k * S + $0].suffix(P)) },
                    s2: (0..<S).map { Array(batch.s2[k * S + $0].suffix(P)) }))
        }
        return results
    }
}

extension PredictorSession {
    /// Brings the session to the window ending at token n (tokens max(0, n - window) ..< n): one
    /// appended row when the cache holds the tokens up to n - 1 and the mode allows it (exact: the
    /// window still starts at token 0; approx-slide: always, evicting the oldest row when full), else
    /// a recomputation of the whole window.
    package func advance(to n: Int, s1: [[Int]], s2: [[Int]], stamps: [[TimeStamp]], window: Int, mode: CacheMode) {
        let lo = max(0, n - window)
        let extendable = length > 0 && consumed == n - 1
        if extendable && (mode == .approxSlide || (mode == .exact && lo == 0)) {
            if length == window { evictOldest() }
            append(s1: s1, s2: s2, stamps: stamps, tokens: n - 1, n)
        } else {
            reset()
            append(s1: s1, s2: s2, stamps: stamps, tokens: lo, n)
        }
        consumed = n
    }
}

extension ForecastEngine {
    /// The activation arithmetic of a forecast that asks for none: int8 when the predictor has
    /// q8_0 / q4_1 / q4_k matmul weights and this processor has the integer kernels that make it
    /// faster than the float path (AVX-512 VNNI, Zen 4: prefill ~2x, decode up to ~2x; AVX2 without
    /// VNNI, Zen 3: prefill ~1.1-1.9x, decode 0.9-1.6x; the portable integer kernel is slower than the
    /// float one); f32 otherwise. The same seed then gives the same forecast, bit for bit, on every
    /// x86-64-v3 processor. Its drift is the int8 path's, measured by `verify --activations int8`
    /// (ActivationPrecision.int8).
    public var defaultActivations: ActivationPrecision { predictor.defaultActivations }

    /// The key / value cache precision of a forecast that asks for none: f16 when the predictor has
    /// q8_0 / q4_1 / q4_k matmul weights, whose own rounding dwarfs the cache's (Kronos-mini q8: s1
    /// KLD 2.586e-4 with either cache) and halves the cache; f32 for f32 / f16 bundles, which stay
    /// as exact as the reference.
    public var defaultKVCache: KVCachePrecision { predictor.defaultKVCache }

    /// `requested`, or the default when nil, as a forecast on this processor runs it (int8 only
    /// where some weight has integer codes).
    public func activations(_ requested: ActivationPrecision?) -> ActivationPrecision {
        predictor.activations(requested)
    }

    /// `requested`, or the default when nil.
    public func kvCache(_ requested: KVCachePrecision?) -> KVCachePrecision { predictor.kvCache(requested) }

    /// Teacher forcing along a given path: the step logits the sampler would see at every step when
    /// the tokens generated so far are `path` (s1 conditioned on the path's own s2 for the s2 logits).
    /// contextS1 / contextS2 [T], stamps [T + P], path [P] -> s1 logits [P][V1], s2 logits [P][V2].
    public func teacherForcedLogits(
        contextS1: [Int], contextS2: [Int], stamps: [TimeStamp], pathS1: [Int], pathS2: [Int],
        maxContext window: Int, cache: CacheMode = .exact, activations: ActivationPrecision? = nil,
        kvCache: KVCachePrecision? = nil
    ) -> (s1: [[Float]], s2: [[Float]]) {
        let r = teacherForcedLogits(
            contextS1: contextS1, contextS2: contextS2, stamps: stamps, pathsS1: [pathS1], pathsS2: [pathS2],
            maxContext: window, cache: cache, activations: activations, kvCache: kvCache)
        return (r.s1[0], r.s2[0])
    }

    /// Teacher forcing along several paths after one context, run as a batch of samples (the
    /// context rows computed and cached once for all paths, as a forecast's samples do):
    /// paths [k][P] -> s1 logits [k][P][V1], s2 logits [k][P][V2].
    /// One path whose steps never slide the window (T + P − 1 ≤ window) runs as one batched pass
    /// (PredictorSession.teacherForcedPass: the same logits, bit for bit, with every weight read once
    /// for the P steps; `stepwise` forces the step-by-step form, for the tests that compare them).
    public func teacherForcedLogits(
        contextS1: [Int], contextS2: [Int], stamps: [TimeStamp], pathsS1: [[Int]], pathsS2: [[Int]],
        maxContext window: Int, cache: CacheMode = .exact, activations: ActivationPrecision? = nil,
        kvCache: KVCachePrecision? = nil, stepwise: Bool = false
    ) -> (s1: [[[Float]]], s2: [[[Float]]]) {
        let T = contextS1.count, k = pathsS1.count, P = pathsS1[0].count
        precondition(
            k >= 1 && pathsS2.count == k && pathsS1.allSatisfy { $0.count == P } && pathsS2.allSatisfy { $0.count == P }
        )
        if !stepwise && k == 1 && T >= 1 && P >= 1 && P <= PredictorSession.passRows && T + P - 1 <= window {
            let session = PredictorSession(
                model: predictor, batch: 1, capacity: T + P - 1, activations: activations, kvCache: kvCache)
            let r = session.teacherForcedPass(
                s1: contextS1 + pathsS1[0], s2: contextS2 + pathsS2[0], stamps: Array(stamps.prefix(T + P)), steps: P)
            return ([r.s1], [r.s2])
        }
        let V1 = predictor.config.s1Vocabulary, V2 = predictor.config.s2Vocabulary
        let session = PredictorSession(
            model: predictor, batch: k, perGroup: k, sharedTokens: T, capacity: min(window, T + P), privateRows: P,
            activations: activations, kvCache: kvCache)
        let s1 = pathsS1.map { contextS1 + $0 }, s2 = pathsS2.map { contextS2 + $0 }
        let allStamps = [[TimeStamp]](repeating: stamps, count: k)
        var l1 = [[[Float]]](repeating: [], count: k), l2 = [[[Float]]](repeating: [], count: k)
        for i in 0..<P {
            session.advance(to: T + i, s1: s1, s2: s2, stamps: allStamps, window: window, mode: cache)
            session.computeS2Logits(picks: pathsS1.map { $0[i] })
            for b in 0..<k {
                l1[b].append(Array(session.s1Logits[(b * V1)..<((b + 1) * V1)]))
                l2[b].append(Array(session.s2Logits[(b * V2)..<((b + 1) * V2)]))
            }
        }
        return (l1, l2)
    }
}
