import Foundation
import Kronos
import KronosCheckpoint
import KronosConvert
import KronosWideEngine
import KronosEngineBaseline
import KronosEngineTypes
import KronosTestSupport
import Testing

/// The engine's two builds (x86-64-v3 and baseline, ARCHITECTURE.md §9) compute the same numbers.
@Suite struct EngineBuildTests {
    static func bundle(_ q: QuantizeChoice) throws -> String {
        let dir = temporaryDirectory("builds")
        var options = ConversionOptions(output: dir + "/tiny.kq")
        options.quantize = q
        options.maxContext = 64
        _ = try convert(
            try Checkpoint(
                tokenizerDirectory: goldenTinyDirectory + "/tokenizer",
                predictorDirectory: goldenTinyDirectory + "/predictor"),
            options: options)
        return options.output
    }

    /// Every step's logits, the generated ids and the paths are equal bit for bit, for f32, q8 and q4
    /// weights, f32 and int8 activations, f32 and f16 caches, a window that slides.
    @Test(arguments: [QuantizeChoice.f32, .q8, .q4])
    func buildsAgreeBitForBit(quantize: QuantizeChoice) throws {
        let path = try Self.bundle(quantize)
        let native = try KronosWideEngine.ForecastEngine(path: path, threads: 2)
        let baseline = try KronosEngineBaseline.ForecastEngine(path: path, threads: 2)
        let series = try CandleSeries(contentsOf: repositoryRoot.appendingPathComponent("golden/sample_4h.csv"))
        let candles = series.candles.suffix(50)
        let times = candles.map { Int64($0.date.timeIntervalSince1970) }
        let values = candles.flatMap {
            [$0.open, $0.high, $0.low, $0.close, $0.volume ?? 0, $0.amount ?? 0].map { Float($0) }
        }
        let future = (1...24).map { times.last! + Int64($0) * 14400 }
        let input = SeriesInput(
            values: values, stamps: times.map { TimeStamp(wallClockSeconds: $0) },
            futureStamps: future.map { TimeStamp(wallClockSeconds: $0) })
        for (activations, kv) in [(ActivationPrecision.f32, KVCachePrecision.f32), (.int8, .f16)] {
            var settings = ForecastSettings(
                predictionLength: 24, maxContext: 64, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
                samples: 3, seed: 5)
            settings.activations = activations
            settings.kvCache = kv
            var ta = ForecastTrace(), tb = ForecastTrace()
            let a = try native.forecast([input], settings: settings, trace: &ta, progress: nil, cancelled: nil)[0]
            let b = try baseline.forecast([input], settings: settings, trace: &tb, progress: nil, cancelled: nil)[0]
            #expect(
                ta.stepS1Logits.flatMap { $0 }.map(\.bitPattern) == tb.stepS1Logits.flatMap { $0 }.map(\.bitPattern),
                "\(quantize) \(activations) \(kv): s1 logits differ")
            #expect(
                ta.stepS2Logits.flatMap { $0 }.map(\.bitPattern) == tb.stepS2Logits.flatMap { $0 }.map(\.bitPattern))
            #expect(a.s1 == b.s1 && a.s2 == b.s2)
            #expect(a.paths.flatMap { $0 }.map(\.bitPattern) == b.paths.flatMap { $0 }.map(\.bitPattern))
        }
    }

    /// KRONOS_KERNELS=portable selects the baseline build (CI's second run of the suite relies on it).
    @Test func theEnvironmentChoosesTheBuild() {
        let portable = ProcessInfo.processInfo.environment["KRONOS_KERNELS"] == "portable"
        #expect(Processor.portableForced == portable)
        if portable { #expect(KronosModel.engineBuild == "baseline") }
        #if arch(x86_64)
            if !portable { #expect(KronosModel.engineBuild == (Processor.hasX86_64_v3 ? "x86-64-v3" : "baseline")) }
        #endif
    }

    /// int8 activations give the same forecast, byte for byte, with the AVX-512 VNNI kernels (and the
    /// 512-bit attention) and with the AVX2 ones a processor without VNNI runs (KRONOS_KERNELS=avx2
    /// makes this one take them): the same seed, the same paths on either kind of machine.
    @Test(.enabled(if: Processor.hasAVX512VNNI && !Processor.portableForced, "needs an AVX-512 VNNI processor"))
    func int8ForecastsAreTheSameWithAndWithoutVNNI() throws {
        let common = [
            tinyQ8Bundle.path, "--input", repositoryRoot.appendingPathComponent("golden/sample_4h.csv").path,
            "--lookback", "60", "--pred-len", "12", "--samples", "3", "--seed", "5", "--format", "json", "-q",
        ]
        let args = common + ["--activations", "int8"]
        let vnni = try runTool("kronos-run", args)
        let avx2 = try runTool("kronos-run", args, environment: ["KRONOS_KERNELS": "avx2"])
        #expect(vnni.status == 0 && avx2.status == 0, "\(vnni.stderr) \(avx2.stderr)")
        #expect(!vnni.stdout.isEmpty && vnni.stdout == avx2.stdout)
        // (and the f32 path is another arithmetic: its output differs, so the comparison can fail)
        let f32 = try runTool("kronos-run", common + ["--activations", "f32"])
        #expect(f32.status == 0 && f32.stdout != vnni.stdout)
    }
}
