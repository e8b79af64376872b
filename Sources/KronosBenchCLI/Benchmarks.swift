// Timing of the runtime's matmul kernels on model-shaped matrices (used by kronos-bench).
import Foundation
import Kronos
import KronosEngineTypes
import KronosQuant
import KronosWideAVX2
import KronosWideEngine
import KronosWideVNNI

public struct KernelTiming: Sendable, Codable {
    public var type: String
    public var rows: Int  // input rows (1 = decode step, > 1 = prefill / batch)
    public var out: Int  // weight rows
    public var inner: Int  // weight columns
    public var seconds: Double  // per call (best of the repetitions)
    public var gflops: Double  // 2 · rows · out · inner / seconds
    public var weightGBps: Double  // stored weight bytes read per second
}

public enum KernelBenchmark {
    /// Times Y [rows, out] = X [rows, inner] @ W^T for W stored as `type` (random uniform weights).
    /// With integerActivations (q8_0, q4_1, q4_k), the int8-activation path, reported as e.g. "q8_0+i8";
    /// with blockedSums, f32 by the packed GEMM of calibration's passes (Workspace.blockedSums), "f32 packed".
    public static func matmul(
        type: TensorType, out: Int, inner: Int, rows: Int, minSeconds: Double = 0.3,
        integerActivations: Bool = false, blockedSums: Bool = false, threads: Int = Runtime.defaultThreads
    ) -> KernelTiming {
        var rng = KronosRNG(seed: 0x1234_5678)
        func next() -> Float { Float(0.2 * rng.nextDouble() - 0.1) }  // uniform in [-0.1, 0.1)
        let rowBytes = type.rowBytes(columns: inner)!
        let arena = ScratchArena()  // owns w, x, y
        defer { withExtendedLifetime(arena) {} }
        let w = arena.rawBuffer(bytes: out * rowBytes)
        let row = [Float](unsafeUninitializedCapacity: inner) { b, n in
            for i in 0..<inner { b[i] = next() }; n = inner
        }
        row.withUnsafeBufferPointer { r in
            for j in 0..<out { try? type.encodeRow(r.baseAddress!, columns: inner, into: w + j * rowBytes) }
        }
        let x: UnsafeMutablePointer<Float> = arena.buffer(count: rows * inner)
        for i in 0..<(rows * inner) { x[i] = next() }
        let y: UnsafeMutablePointer<Float> = arena.buffer(count: rows * out)
        let m = WeightMatrix(type: type, rows: out, columns: inner, data: w)
        let workspace = Workspace(columns: inner, positions: 0, threads: Runtime.startThreads(threads))
        workspace.integerActivations = integerActivations
        workspace.blockedSums = blockedSums
        KronosWideEngine.matmul(m, bias: nil, x, rows: rows, y, workspace: workspace)  // warm up
        var best = Double.infinity, total = 0.0
        while total < minSeconds {
            let t0 = Date()
            KronosWideEngine.matmul(m, bias: nil, x, rows: rows, y, workspace: workspace)
            let dt = Date().timeIntervalSince(t0)
            best = min(best, dt); total += dt
        }
        let flops = 2.0 * Double(rows * out * inner)
        return KernelTiming(
            type: type.rawValue + (integerActivations && type.hasIntegerCodes ? "+i8" : "")
                + (blockedSums && type == .f32 ? " packed" : ""), rows: rows, out: out,
            inner: inner, seconds: best,
            gflops: flops / best / 1e9, weightGBps: Double(out * rowBytes) / best / 1e9)
    }

    /// Times the causal self-attention of a prefill: one sequence of `rows` new rows, `heads` heads
    /// of `headDimension` (random queries, keys, values), as Block.forward runs it. Returns seconds
    /// per pass and GFLOP/s counting 4·hd flops per (query, visible key) pair (scores and weighted sum).
    public static func attention(
        rows: Int, heads: Int, headDimension hd: Int, precision: KVCachePrecision = .f32,
        minSeconds: Double = 0.3, threads: Int = Runtime.defaultThreads
    ) -> (seconds: Double, gflops: Double) {
        let D = heads * hd
        var rng = KronosRNG(seed: 0x9E37_79B9)
        func next() -> Float { Float(2 * rng.nextDouble() - 1) }  // uniform in [-1, 1)
        let cache = KVCache(batch: 1, capacity: rows, width: D, precision: precision)
        let arena = ScratchArena()  // owns q and out
        defer { withExtendedLifetime(arena) {} }
        let q: UnsafeMutablePointer<Float> = arena.buffer(count: rows * D)
        let out: UnsafeMutablePointer<Float> = arena.buffer(count: rows * D)
        var kv = [Float](repeating: 0, count: 2 * D)  // one random key and value per row
        for t in 0..<rows {
            for i in 0..<(2 * D) { kv[i] = next() }
            kv.withUnsafeBufferPointer { cache.store(0, position: t, key: $0.baseAddress!, value: $0.baseAddress! + D) }
        }
        cache.length = rows
        for i in 0..<(rows * D) { q[i] = next() }
        let workspace = Workspace(
            columns: D, positions: rows, headDimension: hd, threads: Runtime.startThreads(threads))
        var best = Double.infinity, total = 0.0
        repeat {
            let t0 = Date()
            cache.attention(
                heads: heads, batch: 1, sequenceStride: 1, newRows: rows, before: 0, q: q, out: out, D: D, hd: hd,
                workspace: workspace)
            let dt = Date().timeIntervalSince(t0)
            best = min(best, dt); total += dt
        } while total < minSeconds
        let pairs = Double(heads) * Double(rows) * Double(rows + 1) / 2
        return (best, 4 * Double(hd) * pairs / best / 1e9)
    }

    /// Times the Gram matrix calibration takes of `rows` activation rows of `columns` values (the
    /// engine's gramMatrix: the packed GEMM's upper triangle where it runs); GFLOP/s of the triangle's
    /// 2 · rows · columns · (columns + 1) / 2 operations.
    public static func gram(columns n: Int, rows: Int, minSeconds: Double = 0.3, threads: Int = Runtime.defaultThreads)
        -> (seconds: Double, gflops: Double)
    {
        var rng = KronosRNG(seed: 0x5151_2024)
        let x = (0..<(rows * n)).map { _ in Float(2 * rng.nextDouble() - 1) }
        var g = [Float](repeating: 0, count: n * n)
        let workspace = Workspace(columns: n, positions: 0, threads: Runtime.startThreads(threads))
        var best = Double.infinity, total = 0.0
        x.withUnsafeBufferPointer { xp in
            g.withUnsafeMutableBufferPointer { gp in
                repeat {
                    let t0 = Date()
                    gramMatrix(xp.baseAddress!, rows: rows, columns: n, into: gp.baseAddress!, workspace: workspace)
                    let dt = Date().timeIntervalSince(t0)
                    best = min(best, dt); total += dt
                } while total < minSeconds
            }
        }
        return (best, Double(rows) * Double(n) * Double(n + 1) / best / 1e9)
    }

    /// numpy's matmul (OpenBLAS) GFLOP/s for the same f32 shape, via python3; nil when unavailable.
    public static func numpyGFLOPs(out: Int, inner: Int, rows: Int, minSeconds: Double = 0.3) -> Double? {
        let script = """
            import time, numpy as np
            rng = np.random.default_rng(0)
            w = rng.standard_normal((\(out), \(inner)), dtype=np.float32)
            x = rng.standard_normal((\(rows), \(inner)), dtype=np.float32)
            x @ w.T
            best, total = 1e9, 0.0
            while total < \(minSeconds):
                t = time.perf_counter(); x @ w.T; d = time.perf_counter() - t; best = min(best, d); total += d
            print(2.0 * \(rows) * \(out) * \(inner) / best / 1e9)
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// End-to-end figures of one bundle (used by kronos-bench).
public struct ForecastTiming: Sendable, Codable {
    public var samples: Int
    public var window: Int
    /// Predictor prefill of a full window for every sequence: rows × sequences per second.
    public var prefillTokensPerSecond: Double
    /// The prefill's block matmul work (2 operations per multiply-add) per second of the whole
    /// prefill, in G operations / s: a lower bound of the GEMMs' own rate (the prefill's time also
    /// holds the attention and the row-wise steps).
    public var prefillMatmulGOPS: Double
    /// Decode steps per second: every sequence gets one row, its s1 logits and its s2 logits.
    public var decodeStepsPerSecond: Double
    /// Whole forecast (normalize, tokenizer encode, generation, tokenizer decode) per cache mode, seconds.
    public var forecastSeconds: [String: Double]
    /// Peak resident memory of the process so far (VmHWM), bytes; nil where /proc is missing.
    public var peakResidentBytes: UInt64?
    /// The activation arithmetic and cache precision it ran with (defaults resolved).
    public var activations: ActivationPrecision
    public var kvCache: KVCachePrecision
}

public enum ForecastBenchmark {
    /// `rows` + `future` hourly stamps and a deterministic random-walk candle series of `rows` rows.
    public static func syntheticSeries(rows: Int, future: Int, seed: UInt64 = 7) -> SeriesInput {
        var rng = KronosRNG(seed: seed)
        var values = [Float](), price = 100.0
        for _ in 0..<rows {
            let open = price
            price *= 1 + 0.01 * (rng.nextDouble() - 0.5)
            let high = max(open, price) * (1 + 0.003 * rng.nextDouble()),
                low = min(open, price) * (1 - 0.003 * rng.nextDouble())
            let volume = 1000 * (0.5 + rng.nextDouble())
            values += [open, high, low, price, volume, volume * price].map { Float($0) }
        }
        let t0: Int64 = 1_700_000_000 - 1_700_000_000 % 14400
        let stamps = (0..<(rows + future)).map { TimeStamp(wallClockSeconds: t0 + Int64($0) * 14400) }
        return SeriesInput(
            values: values, stamps: Array(stamps.prefix(rows)), futureStamps: Array(stamps.suffix(future)))
    }

    /// Prefill, decode and whole-forecast timings of `model` for one series, `samples` paths, a
    /// lookback of `lookback` rows and `predictionLength` steps (best of repetitions up to `minSeconds`).
    public static func measure(
        model: ForecastEngine, samples: Int, lookback: Int, predictionLength: Int,
        modes: [CacheMode], minSeconds: Double = 1, activations requested: ActivationPrecision? = nil,
        kvCache requestedCache: KVCachePrecision? = nil
    ) throws(RuntimeError) -> ForecastTiming {
        let window = model.maxContext
        let activations = model.activations(requested), kvCache = model.kvCache(requestedCache)
        let input = syntheticSeries(rows: lookback, future: predictionLength)
        // Smallest of the seconds `body` reports, repeated until minSeconds have passed (at least once).
        func best(_ body: () throws(RuntimeError) -> Double) throws(RuntimeError) -> Double {
            var best = Double.infinity, total = 0.0
            repeat {
                let t0 = Date()
                best = min(best, try body())
                total += Date().timeIntervalSince(t0)
            } while total < minSeconds
            return best
        }
        func seconds(_ body: () throws(RuntimeError) -> Void) throws(RuntimeError) -> Double {
            let t0 = Date()
            try body()
            return Date().timeIntervalSince(t0)
        }
        // Ids of the series, repeated for every sample.
        let norm = ForecastEngine.normalize(input.values, rows: lookback, clip: 5)
        let ids = model.encode(norm.normalized, rows: lookback)
        let stamps = [[TimeStamp]](repeating: input.stamps + input.futureStamps, count: samples)
        let s1 = [[Int]](repeating: ids.s1 + [Int](repeating: 1, count: predictionLength), count: samples)
        let s2 = [[Int]](repeating: ids.s2 + [Int](repeating: 1, count: predictionLength), count: samples)
        // Prefill: `samples` independent sequences of the context in one batch (tokens/s of the batched kernels).
        let session = PredictorSession(
            model: model.predictor, batch: samples, capacity: window, activations: activations,
            kvCache: kvCache)
        let prefillRows = min(lookback, window)
        let prefill = try best { () throws(RuntimeError) in
            session.reset()
            return try seconds {
                session.advance(to: prefillRows, s1: s1, s2: s2, stamps: stamps, window: window, mode: .exact)
            }
        }
        // Decode: one row per sample and step after a half window of shared context (the window grows,
        // so every step is one row), as a forecast's samples run.
        let steps = min(predictionLength, window / 2), start = min(lookback, window / 2)
        let decoder = PredictorSession(
            model: model.predictor, batch: samples, perGroup: samples, sharedTokens: start, capacity: window,
            privateRows: steps + 1, activations: activations, kvCache: kvCache)
        let picks = [Int](repeating: 1, count: samples)
        let step = try best { () throws(RuntimeError) in
            decoder.reset()
            decoder.advance(to: start, s1: s1, s2: s2, stamps: stamps, window: window, mode: .exact)
            return try seconds {
                for i in 1...steps {
                    decoder.advance(to: start + i, s1: s1, s2: s2, stamps: stamps, window: window, mode: .exact)
                    decoder.computeS2Logits(picks: picks)
                }
            } / Double(steps)
        }
        var forecast = [String: Double]()
        for mode in modes {
            var settings = ForecastSettings(
                predictionLength: predictionLength, maxContext: window, samples: samples, seed: 1)
            settings.cache = mode
            settings.activations = activations
            settings.kvCache = kvCache
            forecast[mode.rawValue] = try best { () throws(RuntimeError) in
                try seconds { () throws(RuntimeError) in _ = try model.forecast([input], settings: settings) }
            }
        }
        return ForecastTiming(
            samples: samples, window: window,
            prefillTokensPerSecond: Double(prefillRows * samples) / prefill,
            prefillMatmulGOPS: 2 * Double(model.predictor.blockMatmulMultiplyAddsPerRow) * Double(prefillRows * samples)
                / prefill / 1e9,
            decodeStepsPerSecond: 1 / step, forecastSeconds: forecast,
            peakResidentBytes: peakResidentBytes(), activations: activations, kvCache: kvCache)
    }

    /// VmHWM of /proc/self/status in bytes (Linux), nil elsewhere.
    public static func peakResidentBytes() -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        let kb = line.split(separator: " ").compactMap { UInt64($0) }.first
        return kb.map { $0 * 1024 }
    }
}

/// One sustained-throughput measurement of kronos-bench peak.
public struct PeakTiming: Sendable, Codable {
    /// "int8" or "f32".
    public var kind: String
    /// The instruction timed, e.g. "vpdpbusd zmm".
    public var instruction: String
    /// Whether it needs AVX-512 (VNNI): else an AVX2 instruction every x86-64-v3 processor runs.
    public var avx512: Bool
    public var threads: Int
    /// Operations per second / 1e9, counting a multiply-add as 2 (as GFLOP/s does).
    public var gops: Double
}

/// This machine's sustained int8 and f32 throughput, measured by loops of independent chains of one
/// instruction on every core (AVX2 / AVX-512 VNNI kernels of KronosWideAVX2 / KronosWideVNNI): what a
/// kernel's GFLOP/s are a fraction of.
public enum PeakBenchmark {
    /// Each loop this processor runs, on 1 thread and on `threads` (default: every core).
    public static func measure(threads: Int = ProcessInfo.processInfo.activeProcessorCount, minSeconds: Double = 0.3)
        -> [PeakTiming]
    {
        // (kind, instruction, multiply-adds per round, loop of one thread): the AVX2 two, then the AVX-512 ones
        var loops: [(String, String, Int, @Sendable (Int) -> Void)] = [
            ("int8", "vpmaddubsw + vpmaddwd ymm", 12 * 32, { r in blackHole(AVX2.peakInt8(rounds: r, seed: 3)) }),
            ("f32", "vfmadd ymm", 12 * 8, { r in blackHole(AVX2.peakFloat(rounds: r, seed: 3)) }),
        ]
        let avx2Loops = loops.count
        if Processor.hasAVX512VNNI {
            let wide: [(String, String, Int, @Sendable (Int) -> Void)] = [
                ("int8", "vpdpbusd ymm", 12 * 32, { r in blackHole(VNNI.peakInt8(rounds: r, seed: 3)) }),
                ("int8", "vpdpbusd zmm", 12 * 64, { r in blackHole(VNNI.peakInt8Wide(rounds: r, seed: 3)) }),
                ("f32", "vfmadd zmm", 12 * 16, { r in blackHole(VNNI.peakFloatWide(rounds: r, seed: 3)) }),
            ]
            loops += wide
        }
        var out = [PeakTiming]()
        for (index, (kind, instruction, perRound, loop)) in loops.enumerated() {
            for n in Set([1, max(1, threads)]).sorted() {
                // Rounds per thread so one pass takes about minSeconds / 3, then the best of 3 passes.
                var rounds = 1 << 16
                while true {
                    let t0 = Date()
                    loop(rounds)
                    if Date().timeIntervalSince(t0) > minSeconds / 30 || rounds >= 1 << 40 { break }
                    rounds *= 4
                }
                let t0 = Date()
                loop(rounds)
                rounds = max(rounds, Int(Double(rounds) * minSeconds / 3 / max(Date().timeIntervalSince(t0), 1e-9)))
                var best = Double.infinity
                let perThread = rounds
                for _ in 0..<3 {
                    let start = Date()
                    DispatchQueue.concurrentPerform(iterations: n) { _ in loop(perThread) }
                    best = min(best, Date().timeIntervalSince(start))
                }
                out.append(
                    PeakTiming(
                        kind: kind, instruction: instruction, avx512: index >= avx2Loops, threads: n,
                        gops: 2 * Double(perRound) * Double(rounds) * Double(n) / best / 1e9))
            }
        }
        return out
    }

    /// The highest int8 and f32 rates on `threads` threads among `timings`; with `wide` false, of the
    /// 256-bit AVX2 instructions only (the limit of the kernels a processor without AVX-512 VNNI runs,
    /// or KRONOS_KERNELS=avx2).
    public static func peak(_ timings: [PeakTiming], threads: Int, wide: Bool = true) -> (int8: Double, f32: Double) {
        let all = timings.filter {
            $0.threads == threads && (wide || !$0.avx512)
        }
        return (
            all.filter { $0.kind == "int8" }.map(\.gops).max() ?? .nan,
            all.filter { $0.kind == "f32" }.map(\.gops).max() ?? .nan
        )
    }
}

/// Keeps a value alive (the peak loops' results).
@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }
