// kronos-bench: GFLOP/s and weight GB/s of the matmul kernels on Kronos-small / Kronos-base shapes,
// for f32, f16, q8_0, q4_1 and q4_k weights, decode (1 row) and prefill (512 rows), beside numpy's
// matmul (OpenBLAS) on the same f32 shapes. Parses arguments and prints; timing is in KronosWideEngine.
import ArgumentParser
import Foundation
import Kronos
import KronosBundle
import KronosQuant
import KronosWideEngine

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kronos-bench",
        abstract: "Benchmark the runtime (release build): matmul kernels, and whole forecasts of bundles.",
        version: KronosVersion.string,
        subcommands: [
            Kernels.self, Attention.self, Gram.self, Peak.self, ForecastBench.self, LoadBench.self, ForecastOne.self,
        ],
        defaultSubcommand: Kernels.self)
}

struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GFLOP/s and weight GB/s of matmul per type and shape, beside numpy (the default).",
        discussion: "Example: swift run -c release kronos-bench kernels --rows 1 --rows 512")

    @Option(help: "Input rows per call (repeatable): 1 = decode step, 512 = prefill of a full window.")
    var rows: [Int] = [1, 512]
    @Option(help: "Seconds of repetitions per measurement.")
    var seconds: Double = 0.3
    @Flag(help: "Skip the numpy comparison.")
    var noNumpy = false
    @Option(
        help: ArgumentHelp(
            "Time this weight shape instead of the Kronos ones (repeatable), e.g. 8192x1024.", valueName: "OUTxIN"))
    var shape: [String] = []

    func run() throws {
        try NativeEngineRequired.check()
        let shapes: [(String, Int, Int)] = [
            ("small attn [512,512]", 512, 512), ("small w1/w3 [1024,512]", 1024, 512),
            ("small w2 [512,1024]", 512, 1024),
            ("head [1024,512]", 1024, 512), ("base attn [832,832]", 832, 832), ("base w1/w3 [2048,832]", 2048, 832),
            ("base w2 [832,2048]", 832, 2048), ("base head [1024,832]", 1024, 832),
        ]
        let custom: [(String, Int, Int)] = try shape.map { text in
            let parts = text.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("--shape \(text): expected OUTxIN, e.g. 8192x1024")
            }
            return ("[\(parts[0]),\(parts[1])]", parts[0], parts[1])
        }
        // This machine's limit, measured in the same run (kronos-bench peak), on the kernels' threads.
        let threads = Runtime.defaultThreads
        let peak = PeakBenchmark.peak(
            PeakBenchmark.measure(threads: threads, minSeconds: 0.2), threads: threads,
            wide: KronosWideEngine.Kernels.IntegerKernels.native == .vnni)
        print(
            String(
                format: "peak on %d threads: int8 %.0f GOPS, f32 %.0f GFLOP/s (kronos-bench peak)\n", threads,
                peak.int8, peak.f32))
        print("| shape | rows | numpy f32 GFLOP/s | type | GFLOP/s | % of numpy | % of peak | weight GB/s |")
        print("|---|---|---|---|---|---|---|---|")
        for (name, out, inner) in custom.isEmpty ? shapes : custom {
            for r in rows {
                let np =
                    noNumpy ? nil : KernelBenchmark.numpyGFLOPs(out: out, inner: inner, rows: r, minSeconds: seconds)
                // (f32 packed: calibration's passes, where the packed GEMM runs)
                let cases: [(TensorType, Bool, Bool)] =
                    [(.f32, false, false)] + (KronosWideEngine.Kernels.packedGemm ? [(.f32, false, true)] : []) + [
                        (.f16, false, false), (.q8_0, false, false), (.q8_0, true, false), (.q4_1, false, false),
                        (.q4_1, true, false), (.q4_k, false, false), (.q4_k, true, false),
                    ]
                for (type, integer, blocked) in cases where type.canStore(rowLength: inner) {
                    let t = KernelBenchmark.matmul(
                        type: type, out: out, inner: inner, rows: r, minSeconds: seconds, integerActivations: integer,
                        blockedSums: blocked)
                    let share = np.map { String(format: "%.0f %%", 100 * t.gflops / $0) } ?? "-"
                    // int8-activation kernels against the int8 peak, the float path against the f32 one.
                    let limit = t.type.hasSuffix("+i8") ? peak.int8 : peak.f32
                    print(
                        "| \(name) | \(r) | \(np.map { String(format: "%.1f", $0) } ?? "-") | \(t.type) | "
                            + String(format: "%.1f", t.gflops) + " | \(share) | "
                            + String(format: "%.0f %%", 100 * t.gflops / limit) + " | "
                            + String(format: "%.2f", t.weightGBps) + " |")
                }
            }
        }
    }
}

/// This machine's f32 peak on the kernels' threads, measured now and printed (what the f32 kernels'
/// GFLOP/s are a fraction of).
func f32Peak() -> (int8: Double, f32: Double) {
    let threads = Runtime.defaultThreads
    let peak = PeakBenchmark.peak(
        PeakBenchmark.measure(threads: threads, minSeconds: 0.2), threads: threads,
        wide: KronosWideEngine.Kernels.IntegerKernels.native == .vnni)
    print(String(format: "peak on %d threads: f32 %.0f GFLOP/s (kronos-bench peak)\n", threads, peak.f32))
    return peak
}

struct Gram: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GFLOP/s of calibration's Gram matrices (XᵀX of activation rows, upper triangle).",
        discussion: "Example: kronos-bench gram --columns 832 --columns 2048 --rows 512")
    @Option(help: "Columns of the activations (repeatable): 832 = Kronos-base's width, 2048 its FFN's.")
    var columns: [Int] = [832, 2048]
    @Option(help: "Activation rows per Gram (repeatable): 512 = a calibration batch.") var rows: [Int] = [512]
    @Option(help: "Seconds of repetitions per measurement.") var seconds = 0.5

    func run() throws {
        try NativeEngineRequired.check()
        let peak = f32Peak()
        print("| columns | rows | ms per Gram | GFLOP/s | % of f32 peak |")
        print("|---|---|---|---|---|")
        for n in columns {
            for r in rows {
                let t = KernelBenchmark.gram(columns: n, rows: r, minSeconds: seconds)
                print(
                    "| \(n) | \(r) | "
                        + String(
                            format: "%.2f | %.1f | %.0f %% |", 1000 * t.seconds, t.gflops, 100 * t.gflops / peak.f32))
            }
        }
    }
}

struct Attention: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GFLOP/s of the prefill's causal attention (one sequence, every head).",
        discussion: "Example: kronos-bench attention --rows 512 --rows 2048")
    @Option(help: "Rows of the sequence (repeatable): 512 = Kronos-small / base window, 2048 = Kronos-mini.")
    var rows: [Int] = [512, 2048]
    @Option(help: "Seconds of repetitions per measurement.") var seconds = 0.5
    @Option(help: "Precisions of the cached keys / values (repeatable).") var kvCache: [KVCachePrecision] = [.f32]

    func run() throws {
        try NativeEngineRequired.check()
        let peak = f32Peak()
        print("| model shape | rows | heads x dim | KV cache | ms per pass | GFLOP/s | % of f32 peak |")
        print("|---|---|---|---|---|---|---|")
        for (name, heads, hd) in [("small", 8, 64), ("base", 16, 52)] {
            for r in rows {
                for precision in kvCache {
                    let t = KernelBenchmark.attention(
                        rows: r, heads: heads, headDimension: hd, precision: precision, minSeconds: seconds)
                    print(
                        "| \(name) | \(r) | \(heads) x \(hd) | \(precision.rawValue) | "
                            + String(
                                format: "%.2f | %.1f | %.0f %% |", 1000 * t.seconds, t.gflops, 100 * t.gflops / peak.f32
                            ))
                }
            }
        }
    }
}

struct Peak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "This machine's sustained int8 and f32 throughput: what the kernels are a fraction of.",
        discussion: """
            Loops of independent chains of one instruction (vpdpbusd zmm / ymm with AVX-512 VNNI, \
            vpmaddubsw + vpmaddwd without, vfmadd zmm / ymm) on one thread and on every core. A multiply-add \
            counts 2 operations, as in GFLOP/s. Example: kronos-bench peak
            """)
    @Option(help: "Threads of the all-cores figure (default: every core).") var threads: Int?
    @Option(help: "Seconds per measurement.") var seconds = 0.3

    func run() throws {
        try NativeEngineRequired.check()
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let timings = PeakBenchmark.measure(threads: n, minSeconds: seconds)
        print("| kind | instruction | threads | G operations/s |")
        print("|---|---|---|---|")
        for t in timings {
            print("| \(t.kind) | \(t.instruction) | \(t.threads) | " + String(format: "%.0f |", t.gops))
        }
        let p = PeakBenchmark.peak(timings, threads: n)
        print(String(format: "\npeak on %d threads: int8 %.0f GOPS, f32 %.0f GFLOP/s", n, p.int8, p.f32))
    }
}

struct ForecastBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast",
        abstract: "Prefill tokens/s, decode steps/s and whole-forecast seconds of bundles, with peak memory.",
        discussion: """
            Each (bundle, samples) pair runs in a child process, so its peak resident memory is its own.
            Example: kronos-bench forecast small-q8.kq base-q8.kq --samples 1 --samples 5 --lookback 512 --pred-len 48
            """)
    @Argument(help: "Bundles to time.") var bundles: [String]
    @Option(help: "Paths per series (repeatable).") var samples: [Int] = [1, 5]
    @Option(help: "Input rows (a synthetic random walk).") var lookback = 512
    @Option(help: "Forecast steps.") var predLen = 48
    @Option(help: "Cache modes of the whole-forecast timing (repeatable).") var cache: [CacheMode] = [
        .exact, .approxSlide,
    ]
    @Option(help: "Seconds of repetitions per measurement.") var seconds = 1.0
    @Option(help: "Worker threads (default: all cores).") var threads: Int?

    @Option(
        help: "Arithmetic of q8_0 / q4_1 / q4_k matmuls: f32 or int8 (default: kronos-run's, int8 on x86-64-v3).")
    var activations: ActivationPrecision?
    @Option(
        help:
            ArgumentHelp(
                "Precision of the predictor's key / value cache: f32 or f16 (default: kronos-run's, f16 for q8 / q4 "
                    + "bundles).")
    )
    var kvCache: KVCachePrecision?

    func run() throws {
        try NativeEngineRequired.check()
        // This executable, however it was started (by name from PATH, argv[0] is only "kronos-bench").
        let me =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).path
        // The matmuls' limit, measured in the same run (kronos-bench peak).
        let timings = PeakBenchmark.measure(threads: threads ?? Runtime.defaultThreads, minSeconds: 0.2)
        let peaks = PeakBenchmark.peak(
            timings, threads: threads ?? Runtime.defaultThreads,
            wide: KronosWideEngine.Kernels.IntegerKernels.native == .vnni)
        print(
            String(
                format: "peak: int8 %.0f GOPS, f32 %.0f GFLOP/s; prefill matmul: the blocks' matmul work over the "
                    + "whole prefill's time, against the peak of its arithmetic\n", peaks.int8, peaks.f32))
        print(
            "| bundle | activations | KV cache | decoded MiB | samples | prefill tok/s | prefill matmul GOPS "
                + "(% of peak) | decode steps/s | "
                + cache.map { "forecast \($0.rawValue) s" }.joined(separator: " | ")
                + " | peak RSS MiB | RSS - decoded MiB |")
        print("|---|---|---|---|---|---|---|---|" + cache.map { _ in "---|" }.joined() + "---|---|")
        for bundle in bundles {
            let decoded = try BundleReader(path: bundle).manifest.decodedBytes
            for s in samples {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: me)
                var arguments =
                    [
                        "forecast-one", bundle, "--samples", "\(s)", "--lookback", "\(lookback)", "--pred-len",
                        "\(predLen)",
                        "--seconds", "\(seconds)",
                    ] + cache.flatMap { ["--cache", $0.rawValue] }
                arguments +=
                    (activations.map { ["--activations", $0.rawValue] } ?? [])
                    + (kvCache.map { ["--kv-cache", $0.rawValue] } ?? [])
                    + (threads.map { ["--threads", "\($0)"] } ?? [])
                p.arguments = arguments
                let pipe = Pipe()
                p.standardOutput = pipe
                try p.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                guard p.terminationStatus == 0 else { throw ValidationError("forecast-one \(bundle) failed") }
                let t = try JSONDecoder().decode(ForecastTiming.self, from: data)
                let mib = { (b: Double) in String(format: "%.1f", b / 1_048_576) }
                let rss = t.peakResidentBytes.map { Double($0) }
                print(
                    "| \((bundle as NSString).lastPathComponent) | \(t.activations.rawValue) | \(t.kvCache.rawValue) | "
                        + "\(mib(Double(decoded))) | \(s) | "
                        + String(
                            format: "%.0f | %.0f (%.0f %%) | %.1f | ", t.prefillTokensPerSecond, t.prefillMatmulGOPS,
                            100 * t.prefillMatmulGOPS / (t.activations == .int8 ? peaks.int8 : peaks.f32),
                            t.decodeStepsPerSecond)
                        + cache.map { String(format: "%.3f", t.forecastSeconds[$0.rawValue] ?? .nan) }.joined(
                            separator: " | ")
                        + " | \(rss.map(mib) ?? "-") | \(rss.map { mib($0 - Double(decoded)) } ?? "-") |")
            }
        }
    }
}

struct LoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Seconds to open, decompress and check a bundle, and the share of it the finiteness check takes.",
        discussion: "Example: kronos-bench load base-q8.kq --repeat 5")
    @Argument(help: "Bundles to load.") var bundles: [String]
    @Option(help: "Loads per bundle (the median is printed).") var `repeat` = 5

    func run() throws {
        try NativeEngineRequired.check()
        print("| bundle | decoded MiB | load s (median) | finiteness check s (median) | check share |")
        print("|---|---|---|---|---|")
        for bundle in bundles {
            var loads = [Double](), checks = [Double](), decoded: UInt64 = 0
            for _ in 0..<max(1, `repeat`) {
                let start = Date()
                let reader = try BundleReader(path: bundle)
                let tensors = try reader.loadAll()  // includes the check
                loads.append(Date().timeIntervalSince(start))
                decoded = reader.manifest.decodedBytes
                // The check alone, over the same decoded tensors, one thread (as each tensor's is).
                let c = Date()
                var found = 0
                for t in tensors.values {
                    if t.record.type.firstNonFinite(t.raw, byteCount: t.record.rawSize) != nil { found += 1 }
                }
                checks.append(Date().timeIntervalSince(c))
                precondition(found == 0)
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            print(
                String(
                    format: "| %@ | %.1f | %.3f | %.4f | %.1f %% |", (bundle as NSString).lastPathComponent,
                    Double(decoded) / 1_048_576,
                    median(loads), median(checks), 100 * median(checks) / median(loads)))
        }
    }
}

struct ForecastOne: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast-one", abstract: "One bundle, as JSON (used by forecast).",
        shouldDisplay: false)
    @Argument var bundle: String
    @Option var samples = 1
    @Option var lookback = 512
    @Option var predLen = 48
    @Option var cache: [CacheMode] = [.exact]
    @Option var seconds = 1.0
    @Option var activations: ActivationPrecision?
    @Option var kvCache: KVCachePrecision?
    @Option var threads: Int?

    func run() throws {
        try NativeEngineRequired.check()
        let model = try ForecastEngine(path: bundle, threads: threads)
        if let w = model.threadWarning { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        let t = try ForecastBenchmark.measure(
            model: model, samples: samples, lookback: lookback, predictionLength: predLen,
            modes: cache, minSeconds: seconds, activations: activations, kvCache: kvCache)
        print(String(decoding: try JSONEncoder().encode(t), as: UTF8.self))
    }
}

extension CacheMode: ExpressibleByArgument {}
extension KVCachePrecision: ExpressibleByArgument {}
extension ActivationPrecision: ExpressibleByArgument {}

/// kronos-bench times the x86-64-v3 build of the engine (KronosWideEngine): on a processor without AVX2 /
/// FMA (or with KRONOS_KERNELS=portable) its measurements must not start (the library and kronos-run
/// switch to the baseline build there).
struct NativeEngineRequired: LocalizedError {
    var errorDescription: String? {
        "kronos-bench measures the engine built for x86-64-v3 (AVX2, FMA), which this processor (or "
            + "KRONOS_KERNELS=portable) does not run"
    }
    static func check() throws { if !Processor.runsNativeEngine { throw NativeEngineRequired() } }
}

Bench.main()
