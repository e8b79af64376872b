// What calibration sees of a model: every matmul's input rows, and the engine's Gram matrices of them.
import Foundation
import KronosBundle
import KronosCheckpoint
import KronosConvert
import KronosEngineTypes
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif
import Synchronization
import Testing

/// Keeps the first observation of every weight, with the engine's Gram of its rows.
final class RecordingObserver: ActivationObserver, @unchecked Sendable {
    struct Seen {
        var rows: Int
        var columns: Int
        var x: [Float]
        var gram: [Float]
    }
    let seen = Mutex<[String: Seen]>([:])
    let calls = Mutex<[String: Int]>([:])
    let rows = Mutex<[String: Int]>([:])

    func observe(
        _ weight: String, _ x: UnsafePointer<Float>, rows: Int, columns: Int,
        gram: @escaping @Sendable (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Bool) -> Void
    ) {
        calls.withLock { $0[weight, default: 0] += 1 }
        self.rows.withLock { $0[weight, default: 0] += rows }
        guard seen.withLock({ $0[weight] == nil }) else { return }
        var g = [Float](repeating: .nan, count: columns * columns)
        g.withUnsafeMutableBufferPointer { gram(x, rows, $0.baseAddress!, false) }
        let copy = Array(UnsafeBufferPointer(start: x, count: rows * columns))
        seen.withLock { $0[weight] = Seen(rows: rows, columns: columns, x: copy, gram: g) }
    }
}

@Suite struct ObserverTests {
    /// Largest |G − XᵀX| / max |XᵀX| over the upper triangle, the engine's f32 Gram against f64 sums.
    static let gramError = 1e-5

    /// A prefill and the decoder show the observer every matmul weight of the model (tokenizer and
    /// predictor, heads and dependency layer), each with its true input width; the Gram the engine
    /// computes for those rows is XᵀX; nothing is observed once the observer is removed.
    @Test func observerSeesEveryMatmulAndTheGramIsXTX() throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32)
        let model = try ForecastEngine(path: bundle)
        let input = try sampleInput(rows: 200, future: 4)
        let observer = RecordingObserver()
        model.observeActivations(observer)
        let x = ForecastEngine.normalize(input.values, rows: 200, clip: 5).normalized
        let ids = model.encode(x, rows: 200)
        _ = model.teacherForcedLogits(
            contextS1: Array(ids.s1[..<196]), contextS2: Array(ids.s2[..<196]), stamps: input.stamps,
            pathS1: Array(ids.s1[196...]), pathS2: Array(ids.s2[196...]), maxContext: 512, activations: .f32,
            kvCache: .f32)
        _ = model.decode(s1: [ids.s1], s2: [ids.s2])
        let seen = observer.seen.withLock { $0 }
        let names = Set(seen.keys)
        for required in [
            "predictor/transformer.0.self_attn.q_proj.weight", "predictor/transformer.1.ffn.w2.weight",
            "predictor/embedding.fusion_proj.weight", "predictor/head.proj_s1.weight",
            "predictor/dep_layer.cross_attn.q_proj.weight", "predictor/dep_layer.cross_attn.k_proj.weight",
            "predictor/head.proj_s2.weight", "tokenizer/encoder.0.ffn.w1.weight",
            "tokenizer/decoder.0.self_attn.out_proj.weight", "tokenizer/head.weight",
        ] {
            #expect(names.contains(required), "\(required) not observed")
        }
        var checked = 0
        for (name, s) in seen where s.rows > 1 {
            let n = s.columns
            var worst = 0.0, scale = 0.0
            for i in 0..<n {
                for j in i..<n {
                    var e = 0.0
                    for r in 0..<s.rows { e += Double(s.x[r * n + i]) * Double(s.x[r * n + j]) }
                    let d = abs(Double(s.gram[i * n + j]) - e)
                    worst = d.isNaN ? .infinity : max(worst, d)  // (an unwritten entry stays NaN)
                    scale = max(scale, abs(e))
                }
            }
            #expect(worst <= Self.gramError * scale, "\(name): Gram off by \(worst) of \(scale)")
            checked += 1
        }
        #expect(checked >= 10)
        model.observeActivations(nil)
        let before = observer.calls.withLock { $0.values.reduce(0, +) }
        _ = model.encode(x, rows: 200)
        #expect(observer.calls.withLock { $0.values.reduce(0, +) } == before, "observed after removal")
    }

    /// Observing with blocked sums (calibration's passes: the packed GEMM where it runs) changes the
    /// logits by f32 rounding only, and every weight sees the same rows; without an observer the
    /// flag is dropped (the next pass has the decode steps' bits again).
    @Test func blockedSumsChangeOnlyRounding() throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32)
        let model = try ForecastEngine(path: bundle)
        let input = try sampleInput(rows: 200, future: 4)
        let x = ForecastEngine.normalize(input.values, rows: 200, clip: 5).normalized
        let ids = model.encode(x, rows: 200)
        func logits() -> (s1: [[Float]], s2: [[Float]]) {
            model.teacherForcedLogits(
                contextS1: Array(ids.s1[..<180]), contextS2: Array(ids.s2[..<180]), stamps: input.stamps,
                pathS1: Array(ids.s1[180...]), pathS2: Array(ids.s2[180...]), maxContext: 512, activations: .f32,
                kvCache: .f32)
        }
        let exact = logits()
        var blocked = [(s1: [[Float]], s2: [[Float]])](), seen = [[String: Int]]()
        for blockedSums in [false, true] {
            let observer = RecordingObserver()
            model.observeActivations(observer, blockedSums: blockedSums)
            blocked.append(logits())
            model.observeActivations(nil)
            seen.append(observer.rows.withLock { $0 })
        }
        #expect(seen[0] == seen[1])
        func bits(_ l: [[Float]]) -> [UInt32] { l.flatMap { $0.map(\.bitPattern) } }
        #expect(bits(blocked[0].s1) == bits(exact.s1), "observing alone changed the logits")
        #expect(bits(logits().s1) == bits(exact.s1), "blocked sums outlived the observer")
        // (logits of order 10: rounding in a 3-block tiny model moves them by ~1e-5; a wrong sum by ≥ 1e-2)
        let largest = exact.s1.flatMap { $0 }.map(abs).max()!
        let worst = zip(blocked[1].s1.flatMap { $0 }, exact.s1.flatMap { $0 }).map { abs($0 - $1) }.max()!
        #expect(worst <= Self.blockedLogitError * largest, "blocked sums moved a logit by \(worst) of \(largest)")
        if Kernels.packedGemm { #expect(worst > 0, "no f32 pass took the packed GEMM") }
    }
    /// Largest logit change blocked sums may make, relative to the largest logit.
    static let blockedLogitError: Float = 1e-4

    /// Calibration's f32 model, built in memory from the checkpoint (f32Model), is the model an f32
    /// bundle of it loads: the same configs and tensor bytes, the same logits bit for bit, with and
    /// without blocked sums.
    @Test func inMemoryF32ModelIsTheF32Bundle() throws {
        let directory = goldenDirectory + "/tiny"
        let checkpoint = try Checkpoint(
            tokenizerDirectory: directory + "/tokenizer", predictorDirectory: directory + "/predictor")
        let (manifest, tensors) = try f32Model(checkpoint, maxContext: 512, threads: 2)
        let memory = try ForecastEngine(manifest: manifest, tensors: tensors, path: "memory")
        let bundle = try BundleCache.shared.bundle(model: directory, quantize: .f32, maxContext: 512)
        let file = try ForecastEngine(path: bundle)
        #expect(memory.manifest.modelConfig == file.manifest.modelConfig && memory.maxContext == file.maxContext)
        let loaded = try BundleReader(path: bundle).loadAll()
        #expect(Set(loaded.keys) == Set(tensors.keys))
        for (key, t) in loaded {
            let m = try #require(tensors[key])
            #expect(m.record.type == t.record.type && m.record.shape == t.record.shape, "\(key)")
            let same = Data(UnsafeRawBufferPointer(m.buffer.bytes)) == Data(UnsafeRawBufferPointer(t.buffer.bytes))
            #expect(same, "\(key): other bytes")
        }
        let input = try sampleInput(rows: 200, future: 4)
        let x = ForecastEngine.normalize(input.values, rows: 200, clip: 5).normalized
        for blockedSums in [false, true] {
            var results = [[UInt32]]()
            for model in [memory, file] {
                model.observeActivations(RecordingObserver(), blockedSums: blockedSums)
                defer { model.observeActivations(nil) }
                let ids = model.encode(x, rows: 200)
                let l = model.teacherForcedLogits(
                    contextS1: Array(ids.s1[..<180]), contextS2: Array(ids.s2[..<180]), stamps: input.stamps,
                    pathS1: Array(ids.s1[180...]), pathS2: Array(ids.s2[180...]), maxContext: 512, activations: .f32,
                    kvCache: .f32)
                results.append((l.s1 + l.s2).flatMap { $0.map(\.bitPattern) } + ids.s1.map { UInt32($0) })
            }
            #expect(results[0] == results[1], "blocked sums \(blockedSums): the models differ")
        }
    }

    /// Teacher forcing without a slide runs batched (one pass for the path's rows, the heads at all
    /// its steps at once): the same logits, bit for bit, as the step-by-step form, in every
    /// arithmetic, and every weight sees the same number of rows.
    @Test(arguments: [
        (QuantizeChoice.f32, ActivationPrecision.f32, KVCachePrecision.f32), (.q8, .int8, .f16), (.q4, .int8, .f16),
        (.q4, .f32, .f32),
    ])
    func batchedTeacherForcingIsTheStepwiseOne(
        quantize: QuantizeChoice, activations: ActivationPrecision, kvCache: KVCachePrecision
    ) throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: quantize)
        let model = try ForecastEngine(path: bundle)
        let input = try sampleInput(rows: 150, future: 4)
        let x = ForecastEngine.normalize(input.values, rows: 150, clip: 5).normalized
        let ids = model.encode(x, rows: 150)
        // (T, window, rows of the series): the last but one slides (stepwise both times); in the last, every
        // row fits one pass (the context and the path in one run), elsewhere the path takes its own pass
        for (T, window, length) in [(130, 512, 150), (130, 149, 150), (30, 512, 150), (140, 64, 150), (80, 512, 100)] {
            let P = length - T
            var logits = [(s1: [[[Float]]], s2: [[[Float]]])](), seen = [[String: Int]]()
            for stepwise in [false, true] {
                let observer = RecordingObserver()
                model.observeActivations(observer)
                logits.append(
                    model.teacherForcedLogits(
                        contextS1: Array(ids.s1[..<T]), contextS2: Array(ids.s2[..<T]), stamps: input.stamps,
                        pathsS1: [Array(ids.s1[T..<length])], pathsS2: [Array(ids.s2[T..<length])], maxContext: window,
                        activations: activations, kvCache: kvCache, stepwise: stepwise))
                model.observeActivations(nil)
                seen.append(observer.rows.withLock { $0 })
            }
            #expect(logits[0].s1[0].count == P && logits[0].s2[0].count == P)
            func bits(_ l: [[[Float]]]) -> [UInt32] { l.flatMap { $0.flatMap { $0.map(\.bitPattern) } } }
            #expect(bits(logits[0].s1) == bits(logits[1].s1), "T \(T), window \(window): s1 logits differ")
            #expect(bits(logits[0].s2) == bits(logits[1].s2), "T \(T), window \(window): s2 logits differ")
            #expect(seen[0] == seen[1], "T \(T), window \(window): observed rows differ")
        }
    }
}
