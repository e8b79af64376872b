import Foundation
import Kronos
import KronosCheckpoint
import KronosConvert
import KronosTestSupport
import KronosWideEngine
import KronosVerify
import Testing

let golden = repositoryRoot.appendingPathComponent("golden/tiny").path

func bundle(_ quantize: QuantizeChoice, model: String = golden) throws -> String {
    let checkpoint = try Checkpoint(tokenizerDirectory: model + "/tokenizer", predictorDirectory: model + "/predictor")
    var options = ConversionOptions(output: temporaryDirectory("verify") + "/b.kq")
    options.quantize = quantize
    options.maxContext = 64
    _ = try convert(checkpoint, options: options)
    return options.output
}

@Suite(.serialized) struct VerifyTests {
    @Test func f32BundleMatchesItsGoldenCases() throws {
        let r = try Verify.run(bundle: try bundle(.f32), golden: golden)
        #expect(r.pass, "\(r.failures)")
        #expect(r.cases.count == 2 && r.overall.steps == 28)
        #expect(r.overall.s1KLD < 1e-9 && r.overall.s2KLD < 1e-9)
        #expect(r.overall.contextIDs == 1 && r.overall.greedyIDsIdentical)
        // The stored golden ensembles were made by the f32 runtime with the same seed and stream.
        #expect(r.overall.ensembleNMAE == 0)
    }

    @Test func quantizedBundleDriftsMeasurablyAndStrictGatesNameMetricAndCase() throws {
        let q8 = try bundle(.q8)
        let r = try Verify.run(bundle: q8, golden: golden)
        #expect(r.overall.s1KLD > 1e-7 && r.overall.s1KLD < 1e-3, "\(r.overall.s1KLD)")
        #expect(r.bitsPerWeight > 8 && r.bitsPerWeight < 10)
        let strict = try runTool(
            "kronos-run", ["verify", q8, "--golden", golden, "--max-s1-kld", "1e-9", "--min-context-ids", "0"])
        #expect(strict.status == 1)
        #expect(strict.stderr.contains("s1_kld") && strict.stderr.contains("(case synth_a)"), "\(strict.stderr)")
        // The table shows the thresholds in a gate row and ends with one plain sentence.
        let lines = strict.stdout.split(separator: "\n")
        #expect(
            lines.contains { $0.hasPrefix("gate (q8)") && $0.contains("<= 1.000e-09") && $0.contains(">= 97.00%") },
            "\(strict.stdout)")
        #expect(
            lines.last!.hasPrefix("q8 bundle: sampled forecasts ")
                && lines.last!.contains(
                    "% of the price from the f32 model's on average over 28 steps (2 cases); 3 checks")
                && lines.last!.contains("outside the q8 gate (s1_kld"), "\(lines.last!)")
        let pass = try runTool("kronos-run", ["verify", q8, "--golden", golden, "--min-context-ids", "0.97"])
        #expect(pass.status == 0 && pass.stdout.hasSuffix("steps (2 cases), within the q8 gate.\n"), "\(pass.stdout)")
    }

    /// The execution approximations are measured, not hidden: verify runs the bundle the way it is
    /// asked to (int8 activations, approx-slide cache, f16 key / value cache), reports how it ran it,
    /// and the drift it reports moves accordingly; without options it runs (and reports) the defaults.
    @Test func verifyMeasuresTheExecutionApproximations() throws {
        let q8 = try bundle(.q8)
        var options = VerifyOptions()
        options.activations = .f32; options.kvCache = .f32
        let plain = try Verify.run(bundle: q8, golden: golden, options: options)
        #expect(plain.activations == .f32 && plain.kvCache == .f32 && plain.cache == .exact)
        options.activations = .int8
        let integer = try Verify.run(bundle: q8, golden: golden, options: options)
        #expect(integer.activations == .int8)
        #expect(integer.overall.s1KLD != plain.overall.s1KLD)
        #expect(integer.overall.contextIDs == plain.overall.contextIDs, "the tokenizer never takes the integer path")
        options.activations = .f32
        options.cache = .approxSlide
        let slide = try Verify.run(bundle: q8, golden: golden, options: options)
        #expect(slide.overall.s1KLD != plain.overall.s1KLD)
        options.cache = .exact
        options.kvCache = .f16
        let half = try Verify.run(bundle: q8, golden: golden, options: options)
        #expect(half.kvCache == .f16)
        #expect(half.overall.s1KLD != plain.overall.s1KLD)
        #expect(half.overall.decodeNMAE == plain.overall.decodeNMAE, "the tokenizer's caches stay f32")
        // Defaults of a q8 bundle: the f16 cache, int8 activations where the processor has the fast
        // integer kernels (AVX-512 VNNI or AVX2).
        let defaults = try Verify.run(bundle: q8, golden: golden)
        let fastIntegers = [.vnni, .avx2].contains(Kernels.IntegerKernels.native)
        #expect(defaults.activations == (fastIntegers ? .int8 : .f32) && defaults.kvCache == .f16)
        options.activations = fastIntegers ? .int8 : .f32
        let explicit = try Verify.run(bundle: q8, golden: golden, options: options)
        #expect(
            defaults.overall.s1KLD == explicit.overall.s1KLD
                && defaults.overall.ensembleNMAE == explicit.overall.ensembleNMAE)
        // An f32 bundle keeps the exact arithmetic by default.
        var noEnsemble = VerifyOptions()
        noEnsemble.ensemble = false
        let f32 = try Verify.run(bundle: try bundle(.f32), golden: golden, options: noEnsemble)
        #expect(f32.activations == .f32 && f32.kvCache == .f32)
    }

    @Test func anotherModelFailsEveryGate() throws {
        // Random weights with the tiny shapes: nothing agrees with the golden model.
        let dir = temporaryDirectory("other")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", repositoryRoot.appendingPathComponent("tools/synth_checkpoint.py").path, "--preset", "tiny",
            "--seed", "3", dir,
        ]
        try p.run(); p.waitUntilExit()
        try #require(p.terminationStatus == 0)
        let r = try Verify.run(bundle: try bundle(.f32, model: dir), golden: golden)
        #expect(!r.pass)
        #expect(r.overall.s1KLD > 0.1)
        #expect(r.failures.contains { $0.hasPrefix("s1_kld") })
        #expect(r.failures.contains { $0.hasPrefix("greedy ids differ") })
    }

    @Test func jsonReportCarriesEveryMetricAndThresholds() throws {
        let out = try runTool(
            "kronos-run", ["verify", try bundle(.f32), "--golden", golden + "/cases/synth_a.json", "--json"])
        #expect(out.status == 0, "\(out.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [String: Any]
        #expect(obj["pass"] as? Bool == true)
        let overall = obj["overall"] as! [String: Any]
        for key in [
            "s1_kld", "s2_kld", "s1_top1", "s2_top1", "context_ids_agree", "decode_nmae", "greedy_nmae",
            "greedy_max_rel", "ensemble_nmae",
        ] {
            #expect(overall[key] != nil, "missing \(key)")
        }
        #expect((obj["cases"] as! [Any]).count == 1)
        #expect((obj["thresholds"] as! [String: Any])["s1_kld"] as? Double == 1e-6)
        #expect(obj["bits_per_weight"] as? Double == 32)
    }
}
