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
        try synthTiny(seed: 3, into: dir)
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

    /// The share gates are one-sided binomial tests, checked against closed forms computed here:
    /// P(X <= n - 1) = 1 - p^n, P(X <= 0) = (1 - p)^n, and a sum of exact binomial terms.
    @Test func shareGatesAreBinomialTests() {
        let oneFlip = ShareGate("s1_top1", "steps", agreements: 23, count: 24, threshold: 0.97, pooled: false)
        #expect(abs(oneFlip.probability! - (1 - pow(0.97, 24))) < 1e-12)
        #expect(oneFlip.pass, "one flipped argmax of 24 steps does not fail a 97 % gate")
        let none = ShareGate("s1_top1", "steps", agreements: 0, count: 10, threshold: 0.5, pooled: false)
        #expect(abs(none.probability! - pow(0.5, 10)) < 1e-15)
        // P(X <= 18 | 24, 0.97) as a plain sum of C(24, i) 0.97^i 0.03^(24 - i).
        var choose = 1.0, cdf = 0.0
        for i in 0...18 {
            if i > 0 { choose = choose * Double(24 - i + 1) / Double(i) }
            cdf += choose * pow(0.97, Double(i)) * pow(0.03, Double(24 - i))
        }
        let six = ShareGate("s1_top1", "steps", agreements: 18, count: 24, threshold: 0.97, pooled: false)
        #expect(abs(six.probability! - cdf) < 1e-12 * max(cdf, 1e-300) + 1e-18, "\(six.probability) vs \(cdf)")
        #expect(!six.pass, "6 of 24 steps off fail a 97 % gate")
        #expect(!ShareGate("s1_top1", "steps", agreements: 20, count: 24, threshold: 0.97, pooled: false).pass)
        #expect(ShareGate("s1_top1", "steps", agreements: 21, count: 24, threshold: 0.97, pooled: false).pass)
        // minimumAgreements is the boundary: one fewer fails, that many passes.
        for (n, p) in [(24, 0.97), (88, 0.97), (1416, 0.99), (12, 0.7), (28, 1.0)] {
            let m = ShareGate("x", "steps", agreements: 0, count: n, threshold: p, pooled: false).minimumAgreements
            #expect(
                ShareGate("x", "steps", agreements: m, count: n, threshold: p, pooled: false).pass, "\(n) \(p) \(m)")
            if m > 0 {
                #expect(!ShareGate("x", "steps", agreements: m - 1, count: n, threshold: p, pooled: false).pass)
            }
        }
        // Pooled, the share itself must reach the threshold: 97 of 100 pass 97 %, 85 of 88 (96.6 %) fail.
        #expect(ShareGate("x", "steps", agreements: 97, count: 100, threshold: 0.97, pooled: true).pass)
        #expect(!ShareGate("x", "steps", agreements: 96, count: 100, threshold: 0.97, pooled: true).pass)
        #expect(!ShareGate("x", "steps", agreements: 85, count: 88, threshold: 0.97, pooled: true).pass)
        #expect(
            ShareGate("x", "steps", agreements: 86, count: 88, threshold: 0.97, pooled: true).minimumAgreements == 86)
        #expect(!ShareGate("x", "steps", agreements: 24, count: 24, threshold: 0.97, pooled: true).resolves)
        #expect(ShareGate("x", "steps", agreements: 34, count: 34, threshold: 0.97, pooled: true).resolves)
        // A 100 % threshold fails at the first disagreement; no steps at all is no evidence: it fails.
        #expect(!ShareGate("x", "steps", agreements: 27, count: 28, threshold: 1, pooled: false).pass)
        #expect(!ShareGate("x", "steps", agreements: 27, count: 28, threshold: 1, pooled: true).pass)
        #expect(ShareGate("x", "steps", agreements: 28, count: 28, threshold: 1, pooled: false).pass)
        #expect(!ShareGate("x", "steps", agreements: 0, count: 0, threshold: 0.5, pooled: false).pass)
    }

    /// Every gate fires through the CLI: a threshold (or bundle) that must fail it exits 1 and names
    /// the metric, so none of them can silently stop gating.
    @Test func everyGateFiresThroughTheCLI() throws {
        let q8 = try bundle(.q8), q4 = try bundle(.q4)
        // (bundle, extra flags, the failure's metric)
        let cases: [(String, [String], String)] = [
            (q8, ["--max-s1-kld", "1e-9"], "s1_kld"),
            (q8, ["--max-s2-kld", "1e-12"], "s2_kld"),
            (q4, ["--min-top1", "0.99"], "s1_top1"),  // (sets the s2 gate too: s2_top1 may fail with it)
            (q4, ["--min-context-ids", "0.99"], "context_ids_agree"),
            (q8, ["--max-decode-nmae", "1e-9"], "decode_nmae"),
            (q8, ["--max-greedy-rel", "1e-9"], "greedy_max_rel"),
            (q8, ["--max-ensemble-nmae", "1e-9"], "ensemble_nmae"),
            (q8, ["--max-bits-per-weight", "4"], "bits_per_weight"),
        ]
        // Loose thresholds everywhere else, so the one under test is the only failure.
        let loose = [
            "--max-s1-kld", "1", "--max-s2-kld", "1", "--min-top1", "0", "--min-context-ids", "0",
            "--max-decode-nmae", "1", "--max-greedy-rel", "10", "--max-ensemble-nmae", "10",
            "--max-bits-per-weight", "32",
        ]
        for (b, flags, metric) in cases {
            let out = try runTool("kronos-run", ["verify", b, "--golden", golden] + loose + flags)
            #expect(out.status == 1, "\(metric): \(out.stdout)")
            let failures = out.stderr.components(separatedBy: "drift above threshold: ").last!
                .trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "; ")
            let allowed = metric == "s1_top1" ? [metric, "s2_top1"] : [metric]
            #expect(
                out.stderr.contains("drift above threshold: \(metric) ")
                    && failures.allSatisfy { f in allowed.contains { f.hasPrefix($0 + " ") } },
                "\(metric) alone fails: \(out.stderr)")
        }
        let same = try runTool("kronos-run", ["verify", q8, "--golden", golden] + loose)
        #expect(same.status == 0, "\(same.stderr)")
        // The greedy-ids gate (f32 bundles' default): a model with other weights fails it.
        let other = temporaryDirectory("other-gates")
        try synthTiny(seed: 5, into: other)
        let wrong = try runTool(
            "kronos-run", ["verify", try bundle(.f32, model: other), "--golden", golden, "--no-ensemble"])
        #expect(wrong.status == 1 && wrong.stderr.contains("greedy ids differ"), "\(wrong.stderr)")
    }

    /// A golden set without cases is an error, never a silent pass or skip.
    @Test func emptyOrMissingCaseSetIsAnError() throws {
        let q8 = try bundle(.q8)
        let empty = temporaryDirectory("empty-golden")
        let none = try runTool("kronos-run", ["verify", q8, "--golden", empty])
        #expect(none.status == 1 && none.stderr.contains("no <case>.json files"), "\(none.stderr)")
        let missing = try runTool("kronos-run", ["verify", q8, "--golden", empty + "/nothing"])
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
    }

    /// A deliberately damaged bundle fails the default q8 gates (the tiny model's, as make verify
    /// runs them): one tensor's values, and so its q8 scales, 10 % off.
    @Test func bundleWithOneTensorTenPercentOffFails() throws {
        let dir = temporaryDirectory("damaged")
        let fm = FileManager.default
        try fm.copyItem(atPath: golden + "/tokenizer", toPath: dir + "/tokenizer")
        try fm.copyItem(atPath: golden + "/predictor", toPath: dir + "/predictor")
        try scaleTensor("\(damagedTensor)", by: 1.1, in: dir + "/predictor/model.safetensors")
        let damaged = try runTool(
            "kronos-run", ["verify", try bundle(.q8, model: dir), "--golden", golden, "--min-context-ids", "0.97"])
        #expect(damaged.status == 1, "\(damaged.stdout)")
        let intact = try runTool(
            "kronos-run", ["verify", try bundle(.q8), "--golden", golden, "--min-context-ids", "0.97"])
        #expect(intact.status == 0, "\(intact.stderr)")
    }
}

/// The tensor bundleWithOneTensorTenPercentOffFails damages.
let damagedTensor = "head.proj_s1.weight"

/// Multiplies every value of one F32 tensor of a safetensors file by `factor`, in place (the
/// header's data_offsets, relative to the end of the header).
func scaleTensor(_ name: String, by factor: Float, in path: String) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    let headerLength = Int(data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    let header = try JSONSerialization.jsonObject(with: data[8..<(8 + headerLength)]) as! [String: Any]
    let entry = try #require(header[name] as? [String: Any], "no tensor \(name)")
    #expect(entry["dtype"] as? String == "F32")
    let offsets = entry["data_offsets"] as! [Int]
    let start = 8 + headerLength + offsets[0], end = 8 + headerLength + offsets[1]
    data.withUnsafeMutableBytes { raw in
        for o in stride(from: start, to: end, by: 4) {
            let v = raw.loadUnaligned(fromByteOffset: o, as: Float.self)
            raw.storeBytes(of: v * factor, toByteOffset: o, as: Float.self)
        }
    }
    try data.write(to: URL(fileURLWithPath: path))
}

/// A random checkpoint with the tiny shapes (tools/synth_checkpoint.py).
func synthTiny(seed: Int, into dir: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [
        "python3", repositoryRoot.appendingPathComponent("tools/synth_checkpoint.py").path, "--preset", "tiny",
        "--seed", "\(seed)", dir,
    ]
    try p.run(); p.waitUntilExit()
    try #require(p.terminationStatus == 0)
}
