// Accuracy drift of a bundle against golden FP32 cases (the layout golden/README.md describes:
// golden/tiny, ../shared/reference): teacher-forced KL divergence and top-1 agreement of the step logits, tokenizer
// agreement, decoder drift, free-running greedy and sampled-ensemble forecasts.
import Foundation
import Kronos
import KronosIO
import KronosBundle
import KronosCheckpoint
import KronosConvert
import KronosEngineTypes

/// Gate values; nil = reported, not gated.
public struct VerifyThresholds: Codable, Sendable, Equatable {
    public var s1KLD: Double?  // maximum
    public var s2KLD: Double?  // maximum
    public var s1Top1: Double?  // minimum share
    public var s2Top1: Double?  // minimum share
    public var contextIDs: Double?  // minimum share
    public var decodeNMAE: Double?  // maximum
    public var greedyMaxRelative: Double?  // maximum
    public var greedyIDsIdentical: Bool  // generated ids must equal the golden ones
    public var ensembleNMAE: Double?  // maximum
    public var bitsPerWeight: Double?  // maximum

    enum CodingKeys: String, CodingKey {
        case s1KLD = "s1_kld", s2KLD = "s2_kld", s1Top1 = "s1_top1", s2Top1 = "s2_top1"
        case contextIDs = "context_ids_agree", decodeNMAE = "decode_nmae", greedyMaxRelative = "greedy_max_rel"
        case greedyIDsIdentical = "greedy_ids_identical", ensembleNMAE = "ensemble_nmae", bitsPerWeight =
            "bits_per_weight"
    }

    /// Defaults per bundle type (the conversion's --quantize). See golden/README.md for the figures
    /// they were set from.
    public static func defaults(for quantize: String) -> VerifyThresholds {
        switch quantize {
        case "f32":
            return VerifyThresholds(
                s1KLD: 1e-6, s2KLD: 1e-6, s1Top1: 1, s2Top1: 1, contextIDs: 1, decodeNMAE: 1e-4,
                greedyMaxRelative: 1e-4, greedyIDsIdentical: true, ensembleNMAE: 1e-4, bitsPerWeight: nil)
        case "f16":
            return VerifyThresholds(
                s1KLD: 1e-4, s2KLD: 1e-4, s1Top1: 0.99, s2Top1: 0.99, contextIDs: 0.99, decodeNMAE: 1e-3,
                greedyMaxRelative: 0.05, greedyIDsIdentical: false, ensembleNMAE: 0.1, bitsPerWeight: nil)
        case "q8":
            return VerifyThresholds(
                s1KLD: 1e-3, s2KLD: 1e-3, s1Top1: 0.97, s2Top1: 0.97, contextIDs: 0.99, decodeNMAE: 0.01,
                greedyMaxRelative: nil, greedyIDsIdentical: false, ensembleNMAE: 0.3, bitsPerWeight: nil)
        default:  // q4
            return VerifyThresholds(
                s1KLD: 0.05, s2KLD: 0.05, s1Top1: 0.85, s2Top1: 0.85, contextIDs: 0.93, decodeNMAE: 0.1,
                greedyMaxRelative: nil, greedyIDsIdentical: false, ensembleNMAE: 0.6, bitsPerWeight: 5.0)
        }
    }
}

/// A share gate (top-1 agreement, context ids) with the count behind the share. Pooled over all cases
/// (`pooled`), the share must reach the threshold: agreements >= threshold · count. A single case is
/// gated only as far as its steps resolve the threshold, by a one-sided binomial test: it fails where
/// its agreements are too few to come, with probability at least `significance`, from a model that
/// agrees at the threshold's rate: P(X <= agreements | count, threshold) < significance. So one
/// flipped argmax of a 24-step case where two logits nearly tie (95.8 %) does not fail a 97 % gate
/// (P = 0.52), while 4 of 24 do (P = 0.005); a threshold of 100 % fails at the first disagreement
/// either way. `resolves`: whether the count can resolve the threshold at all, i.e. one disagreement
/// alone leaves the share at or above it (count >= 1 / (1 - threshold); 100 % always resolves).
public struct ShareGate: Codable, Sendable, Equatable {
    /// The probability below which a single case's share fails its gate.
    public static let significance = 0.01

    public var metric: String
    public var unit: String
    public var agreements: Int
    public var count: Int
    public var threshold: Double
    public var pooled: Bool
    public var share: Double { count == 0 ? .nan : Double(agreements) / Double(count) }
    /// Per case: P(X <= agreements) for X ~ Binomial(count, threshold); pooled: nil.
    public var probability: Double?
    /// The fewest agreements that pass.
    public var minimumAgreements: Int
    public var resolves: Bool {
        threshold >= 1 || Double(count) * (1 - threshold) >= 1 - 1e-9
    }
    public var pass: Bool { count > 0 && agreements >= minimumAgreements }

    public init(_ metric: String, _ unit: String, agreements: Int, count: Int, threshold: Double, pooled: Bool) {
        self.metric = metric; self.unit = unit; self.agreements = agreements; self.count = count
        self.threshold = threshold; self.pooled = pooled
        if pooled {
            probability = nil
            // the smallest k with k / count >= threshold, as the share is compared (97 of 100 pass 0.97)
            var k = max(0, Int((threshold * Double(count)).rounded(.down)) - 1)
            while k <= count && Double(k) / Double(max(count, 1)) < threshold { k += 1 }
            minimumAgreements = k
        } else {
            // P(X <= k) summed term by term once: the first k reaching the significance passes.
            var cdf = 0.0, minimum: Int?, atAgreements = 0.0
            for k in 0...max(count, 0) {
                cdf = min(1, cdf + Self.binomialTerm(k, count, threshold))
                if minimum == nil && cdf >= Self.significance { minimum = k }
                if k == agreements { atAgreements = cdf }
            }
            probability = count == 0 ? 0 : agreements >= count ? 1 : atAgreements
            minimumAgreements = count > 0 ? minimum ?? count + 1 : count + 1
        }
    }

    enum CodingKeys: String, CodingKey {
        case metric, unit, agreements, count, threshold, pooled, probability,
            minimumAgreements = "minimum_agreements"
    }

    /// P(X = i) for X ~ Binomial(n, p), from logarithms (exact to rounding for any n here).
    static func binomialTerm(_ i: Int, _ n: Int, _ p: Double) -> Double {
        if p >= 1 { return i == n ? 1 : 0 }
        if p <= 0 { return i == 0 ? 1 : 0 }
        let logChoose =
            Foundation.lgamma(Double(n + 1)) - Foundation.lgamma(Double(i + 1)) - Foundation.lgamma(Double(n - i + 1))
        return Foundation.exp(logChoose + Double(i) * Foundation.log(p) + Double(n - i) * Foundation.log1p(-p))
    }
}

/// The metrics of one case (or of all cases, pooled over steps / rows).
public struct DriftMetrics: Codable, Sendable {
    public var name: String
    public var steps: Int
    public var contextRows: Int
    /// Steps whose s1 / s2 argmax agrees with the golden one, context rows encoded to the golden ids:
    /// the counts behind the shares, which the share gates test (ShareGate).
    public var s1Agreements: Int
    public var s2Agreements: Int
    public var contextAgreements: Int
    /// The gated shares with their counts (per case: binomial; pooled: the share), as `run` tested them.
    public var shareGates: [ShareGate] = []
    public var s1KLD: Double
    public var s2KLD: Double
    public var s1Top1: Double
    public var s2Top1: Double
    public var contextIDs: Double
    public var decodeNMAE: Double
    public var greedyNMAE: Double
    public var greedyMaxRelative: Double
    public var greedyIDsIdentical: Bool
    public var ensembleNMAE: Double?
    /// Mean |close - golden close| / |golden close| of the sampled ensembles over the steps (a
    /// share: 0.004 is 0.4 % of the price); not gated, the plain-language summary of the drift.
    public var ensembleCloseDrift: Double?

    enum CodingKeys: String, CodingKey {
        case ensembleCloseDrift = "ensemble_close_drift"
        case name = "case", steps, contextRows = "context_rows"
        case s1Agreements = "s1_top1_agreements", s2Agreements = "s2_top1_agreements"
        case contextAgreements = "context_ids_agreements", shareGates = "share_gates"
        case s1KLD = "s1_kld", s2KLD = "s2_kld", s1Top1 = "s1_top1", s2Top1 = "s2_top1"
        case contextIDs = "context_ids_agree", decodeNMAE = "decode_nmae", greedyNMAE = "greedy_nmae"
        case greedyMaxRelative = "greedy_max_rel", greedyIDsIdentical = "greedy_ids_identical", ensembleNMAE =
            "ensemble_nmae"
    }
}

public struct VerifyOptions: Sendable {
    /// Paths per case of the ensemble metric, and the seed of their shared random stream.
    public var samples = 8
    public var seed: UInt64 = 1234
    /// Settings of the ensemble's sampler (the reference's `predict` defaults).
    public var sampling = SamplingSettings(temperature: 1, topK: 0, topP: 0.9)
    public var thresholds: VerifyThresholds?
    /// Skip the ensemble metric (it needs the golden model's checkpoints or stored ensembles).
    public var ensemble = true
    /// Write the f32 ensembles computed from the golden checkpoints into DIR/cases.
    public var writeEnsembles = false
    /// Cache mode of the bundle under test (approx-slide measures that approximation's drift; the
    /// golden ensembles are always exact).
    public var cache: CacheMode = .exact
    /// Activation arithmetic of the bundle under test (nil: the model's default on this processor;
    /// the golden ensembles, of f32 weights, always multiply in f32).
    public var activations: ActivationPrecision?
    /// Key / value cache precision of the bundle under test (nil: the model's default; the golden
    /// ensembles, of f32 weights, always cache f32).
    public var kvCache: KVCachePrecision?
    public init() {}

    /// settings with this run's cache mode and approximations (those of the bundle under test).
    func underTest(_ settings: ForecastSettings) -> ForecastSettings {
        var s = settings
        s.cache = cache; s.activations = activations; s.kvCache = kvCache
        return s
    }
}

public struct VerifyReport: Codable, Sendable {
    public var bundle: String
    public var golden: String
    public var type: String
    public var bitsPerWeight: Double
    /// The arithmetic the bundle under test ran with (defaults resolved on this processor).
    public var cache: CacheMode
    public var activations: ActivationPrecision
    public var kvCache: KVCachePrecision
    public var thresholds: VerifyThresholds
    public var cases: [DriftMetrics]
    public var overall: DriftMetrics
    public var failures: [String]
    public var pass: Bool
    enum CodingKeys: String, CodingKey {
        case bundle, golden, type, bitsPerWeight = "bits_per_weight", cache, activations, kvCache = "kv_cache",
            thresholds, cases, overall,
            failures, pass
    }
}

public enum Verify {
    public static func run(bundle path: String, golden: String, options: VerifyOptions = VerifyOptions()) throws
        -> VerifyReport
    {
        let model = try KronosModel.loadEngine(path: path, threads: nil)
        let caseFiles = try caseList(golden)
        let type = model.manifest.settings.quantize
        let thresholds = options.thresholds ?? VerifyThresholds.defaults(for: type)
        let goldenRoot = caseFiles.root
        var ensembleModel: (any ForecastBackend)?
        var metrics = [DriftMetrics]()
        var pooled = Pool()
        for (dir, name) in caseFiles.cases {
            let c = try GoldenCase(
                directory: dir, name: name, s1Vocabulary: model.manifest.predictorConfig.s1Vocabulary,
                s2Vocabulary: model.manifest.predictorConfig.s2Vocabulary)
            var casePool = try measure(model, c, options)
            if options.ensemble {
                let stored = dir + "/\(name)_ensemble.csv"
                var golden: [Float]?
                if !options.writeEnsembles, FileManager.default.fileExists(atPath: stored) {
                    golden = try readEnsemble(stored, rows: c.predLen)
                } else if let root = goldenRoot {
                    if ensembleModel == nil { ensembleModel = try referenceModel(root) }
                    golden = try ensemble(ensembleModel!, c, options, underTest: false)
                    if options.writeEnsembles { try writeEnsemble(golden!, c, options, to: stored) }
                }
                if let golden {
                    let ours = try ensemble(model, c, options, underTest: true)
                    casePool.ensemble.append(nmae(ours, golden, std: c.std))
                    casePool.ensembleClose += closeDrift(ours, golden)
                }
            }
            metrics.append(casePool.summary(name: c.name))
            pooled.absorb(casePool)
        }
        var overall = pooled.summary(name: "overall")
        for i in metrics.indices { metrics[i].shareGates = shareGates(metrics[i], thresholds, pooled: false) }
        overall.shareGates = shareGates(overall, thresholds, pooled: true)
        let bpw = bitsPerWeight(model.manifest)
        var failures = [String]()
        for m in metrics + [overall] { failures += check(m, thresholds) }
        if let b = thresholds.bitsPerWeight, !(bpw <= b) {
            failures.append("bits_per_weight \(fmt(bpw)) > \(fmt(b)) (bundle)")
        }
        return VerifyReport(
            bundle: path, golden: golden, type: type, bitsPerWeight: bpw, cache: options.cache,
            activations: model.activations(options.activations), kvCache: model.kvCache(options.kvCache),
            thresholds: thresholds, cases: metrics, overall: overall, failures: failures, pass: failures.isEmpty)
    }

    /// Reads and validates one golden case (DIR/NAME.json, .safetensors, _input.csv) for a model
    /// with these vocabularies, as `run` does before using it; returns its pred_len.
    public static func checkCase(directory: String, name: String, s1Vocabulary: Int, s2Vocabulary: Int) throws -> Int {
        try GoldenCase(directory: directory, name: name, s1Vocabulary: s1Vocabulary, s2Vocabulary: s2Vocabulary).predLen
    }

    /// Cases under DIR/cases (or DIR itself, or one case file); root = the directory holding
    /// tokenizer/ and predictor/ when present.
    static func caseList(_ golden: String) throws -> (root: String?, cases: [(String, String)]) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: golden, isDirectory: &isDir) else {
            throw RuntimeError.input(
                file: golden, line: nil, column: nil, message: "golden directory or case file does not exist")
        }
        func hasModel(_ d: String) -> Bool {
            fm.fileExists(atPath: d + "/tokenizer/config.json") && fm.fileExists(atPath: d + "/predictor/config.json")
        }
        if !isDir.boolValue {
            let url = URL(fileURLWithPath: golden)
            let dir = url.deletingLastPathComponent().path
            let name = url.deletingPathExtension().lastPathComponent
            let parent = URL(fileURLWithPath: dir).deletingLastPathComponent().path
            return (hasModel(parent) ? parent : nil, [(dir, name)])
        }
        let casesDir = fm.fileExists(atPath: golden + "/cases") ? golden + "/cases" : golden
        let names = try fm.contentsOfDirectory(atPath: casesDir).filter { $0.hasSuffix(".json") }.map {
            String($0.dropLast(5))
        }.sorted()
        guard !names.isEmpty else {
            throw RuntimeError.input(file: casesDir, line: nil, column: nil, message: "no <case>.json files")
        }
        let root = casesDir == golden ? URL(fileURLWithPath: golden).deletingLastPathComponent().path : golden
        return (hasModel(root) ? root : nil, names.map { (casesDir, $0) })
    }

    /// Per-step, per-row and per-case observations of one case or of all of them; the metrics are
    /// their means, shares and maxima.
    struct Pool {
        var s1KL = [Double](), s2KL = [Double](), s1Agree = [Bool](), s2Agree = [Bool](), ctxAgree = [Bool]()
        var decodeErr = [Double](), greedyErr = [Double](), greedyRel = [Double](), greedyIDs = [Bool](),
            ensemble = [Double]()
        var ensembleClose = [Double]()  // per step |close - golden| / |golden|

        mutating func absorb(_ o: Pool) {
            s1KL += o.s1KL; s2KL += o.s2KL; s1Agree += o.s1Agree; s2Agree += o.s2Agree; ctxAgree += o.ctxAgree
            decodeErr += o.decodeErr; greedyErr += o.greedyErr; greedyRel += o.greedyRel; greedyIDs += o.greedyIDs
            ensemble += o.ensemble; ensembleClose += o.ensembleClose
        }

        func summary(name: String) -> DriftMetrics {
            func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }
            // (an empty pool never reaches here: a case has steps and context rows, GoldenCase checks)
            func share(_ v: [Bool]) -> Double { v.isEmpty ? .nan : Double(count(v)) / Double(v.count) }
            func count(_ v: [Bool]) -> Int { v.filter { $0 }.count }
            return DriftMetrics(
                name: name, steps: s1KL.count, contextRows: ctxAgree.count, s1Agreements: count(s1Agree),
                s2Agreements: count(s2Agree), contextAgreements: count(ctxAgree), s1KLD: mean(s1KL), s2KLD: mean(s2KL),
                s1Top1: share(s1Agree), s2Top1: share(s2Agree), contextIDs: share(ctxAgree),
                decodeNMAE: mean(decodeErr),
                greedyNMAE: mean(greedyErr), greedyMaxRelative: greedyRel.max() ?? 0,
                greedyIDsIdentical: greedyIDs.allSatisfy { $0 },
                ensembleNMAE: ensemble.isEmpty ? nil : mean(ensemble),
                ensembleCloseDrift: ensembleClose.isEmpty ? nil : mean(ensembleClose))
        }
    }

    /// Every metric of one case but the ensemble one.
    static func measure(_ model: any ForecastBackend, _ c: GoldenCase, _ o: VerifyOptions) throws -> Pool {
        // Tokenizer: encode the golden normalized input.
        let ids = model.encode(c.xNorm, rows: c.rows)
        let ctxAgree = (0..<c.rows).map { ids.s1[$0] == c.contextS1[$0] && ids.s2[$0] == c.contextS2[$0] }
        // Decoder drift: decode the golden context ids, compare with the golden reconstruction.
        let keep = min(c.rows, c.maxContext)
        let recon = model.decode(s1: [Array(c.contextS1.suffix(keep))], s2: [Array(c.contextS2.suffix(keep))])
        let decodeErr = zip(recon, c.contextRecon).map { Double(abs($0 - $1)) }
        // Teacher forcing along the golden path.
        let tf = model.teacherForcedLogits(
            contextS1: c.contextS1, contextS2: c.contextS2, stamps: c.stamps + c.futureStamps,
            pathS1: c.genS1, pathS2: c.genS2, maxContext: c.maxContext, cache: o.cache,
            activations: o.activations, kvCache: o.kvCache)
        var s1KL = [Double](), s2KL = [Double](), s1Agree = [Bool](), s2Agree = [Bool]()
        for i in 0..<c.predLen {
            s1KL.append(kl(c.stepS1[i], tf.s1[i])); s2KL.append(kl(c.stepS2[i], tf.s2[i]))
            s1Agree.append(argmax(c.stepS1[i]) == argmax(tf.s1[i]));
            s2Agree.append(argmax(c.stepS2[i]) == argmax(tf.s2[i]))
        }
        // Free-running greedy forecast.
        let settings = o.underTest(
            ForecastSettings(
                predictionLength: c.predLen, maxContext: c.maxContext,
                sampling: SamplingSettings(temperature: 1, topK: 1, topP: 1), samples: 1, seed: 0))
        let greedy = try model.forecast([c.input], settings: settings)[0]
        let greedyErr = nmae(greedy.mean, c.forecast, std: c.std)
        var rel = 0.0
        for (a, b) in zip(greedy.mean, c.forecast) { rel = max(rel, Double(abs(a - b)) / max(Double(abs(b)), 1e-3)) }
        let same = greedy.s1[0] == c.genS1 && greedy.s2[0] == c.genS2

        return Pool(
            s1KL: s1KL, s2KL: s2KL, s1Agree: s1Agree, s2Agree: s2Agree, ctxAgree: ctxAgree, decodeErr: decodeErr,
            greedyErr: [greedyErr], greedyRel: [rel], greedyIDs: [same])
    }

    /// Mean of `samples` sampled paths (denormalized) [P, 6], with the options' seed and sampler, and
    /// the options' approximations when `underTest` (else exact, as the golden ensembles are).
    static func ensemble(_ model: any ForecastBackend, _ c: GoldenCase, _ o: VerifyOptions, underTest: Bool) throws
        -> [Float]
    {
        var exact = ForecastSettings(
            predictionLength: c.predLen, maxContext: c.maxContext, sampling: o.sampling,
            samples: o.samples, seed: o.seed)
        exact.activations = .f32; exact.kvCache = .f32
        let settings = underTest ? o.underTest(exact) : exact
        return try model.forecast([c.input], settings: settings)[0].mean
    }

    /// The golden model itself, converted to an f32 bundle in a temporary directory.
    static func referenceModel(_ root: String) throws -> any ForecastBackend {
        let checkpoint = try Checkpoint(
            tokenizerDirectory: root + "/tokenizer", predictorDirectory: root + "/predictor")
        let dir = NSTemporaryDirectory() + "kronos-verify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = ConversionOptions(output: dir + "/golden-f32.kq")
        options.quantize = .f32
        options.maxContext = 1 << 20
        _ = try convert(checkpoint, options: options)
        return try KronosModel.loadEngine(path: options.output, threads: nil)
    }

    static func writeEnsemble(_ v: [Float], _ c: GoldenCase, _ o: VerifyOptions, to path: String) throws {
        var text =
            "# f32 ensemble: mean of \(o.samples) paths, seed \(o.seed), temperature \(o.sampling.temperature), top_k "
            + "\(o.sampling.topK), top_p \(o.sampling.topP)\n"
        text += Candles.columns.joined(separator: ",") + "\n"
        for t in 0..<c.predLen {
            text += (0..<6).map { NumberText.decimal(v[t * 6 + $0]) }.joined(separator: ",") + "\n"
        }
        let out = OutputSet()  // the output rules of every tool (OutputFile.swift)
        try out.stage(try out.add(path, option: "--write-ensembles"), Data(text.utf8))
        try out.commit()
    }

    static func readEnsemble(_ path: String, rows: Int) throws -> [Float] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.dropFirst()
        let values = lines.flatMap { $0.split(separator: ",").compactMap { Float($0) } }
        guard values.count == rows * 6 else {
            throw RuntimeError.input(
                file: path, line: nil, column: nil,
                message: "expected \(rows) rows of 6 values, found \(values.count) values")
        }
        return values
    }

    /// |close - golden close| / |golden close| per step of two [P, 6] forecasts.
    static func closeDrift(_ a: [Float], _ golden: [Float]) -> [Double] {
        stride(from: 3, to: min(a.count, golden.count), by: 6).map {
            Double(abs(a[$0] - golden[$0])) / max(Double(abs(golden[$0])), 1e-12)
        }
    }

    /// One plain sentence on the report: how far the bundle's forecasts are from the f32 model's,
    /// and whether it is within the gate of its type.
    public static func summary(_ r: VerifyReport) -> String {
        let m = r.overall
        let cases = "\(r.cases.count) case\(r.cases.count == 1 ? "" : "s")"
        let drift =
            m.ensembleCloseDrift.map {
                "sampled forecasts \(String(format: "%.2g", $0 * 100)) % of the price from the f32 model's on average "
                    + "over \(m.steps) steps (\(cases))"
            }
            ?? "s1 top-1 agreement \(String(format: "%.1f", m.s1Top1 * 100)) % over \(m.steps) steps (\(cases)), no "
            + "ensemble"
        if r.pass { return "\(r.type) bundle: \(drift), within the \(r.type) gate." }
        return
            "\(r.type) bundle: \(drift); \(r.failures.count) check\(r.failures.count == 1 ? "" : "s") outside the "
            + "\(r.type) gate (\(r.failures.first!)\(r.failures.count > 1 ? ", ..." : ""))."
    }

    /// Mean |a - b| / std of the column.
    static func nmae(_ a: [Float], _ b: [Float], std: [Float]) -> Double {
        var s = 0.0
        for i in a.indices { s += Double(abs(a[i] - b[i])) / max(Double(std[i % 6]), 1e-12) }
        return s / Double(max(a.count, 1))
    }

    /// KL(softmax(p) || softmax(q)) at temperature 1.
    static func kl(_ p: [Float], _ q: [Float]) -> Double {
        func logSoftmax(_ v: [Float]) -> [Double] {
            let m = Double(v.max()!)
            let lse = m + Foundation.log(v.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
            return v.map { Double($0) - lse }
        }
        let lp = logSoftmax(p), lq = logSoftmax(q)
        var s = 0.0
        for i in lp.indices { s += Foundation.exp(lp[i]) * (lp[i] - lq[i]) }
        return max(s, 0)
    }

    static func argmax(_ v: [Float]) -> Int { v.indices.max { v[$0] < v[$1] }! }

    static func bitsPerWeight(_ m: Manifest) -> Double {
        let float = m.tensors.filter { $0.type != .i64 }
        let bytes = float.reduce(0) { $0 + $1.rawSize }, params = float.reduce(0) { $0 + $1.elementCount }
        return Double(bytes * 8) / Double(max(params, 1))
    }

    static func check(_ m: DriftMetrics, _ t: VerifyThresholds) -> [String] {
        var f = [String]()
        // `!(v <= limit)`: a NaN metric fails its gate (NaN compares false both ways).
        func over(_ name: String, _ v: Double, _ limit: Double?) {
            if let limit, !(v <= limit) { f.append("\(name) \(fmt(v)) > \(fmt(limit)) (case \(m.name))") }
        }
        over("s1_kld", m.s1KLD, t.s1KLD); over("s2_kld", m.s2KLD, t.s2KLD)
        for gate in m.shareGates where !gate.pass {
            f.append(
                "\(gate.metric) \(fmt(gate.share)) < \(fmt(gate.threshold)) (case \(m.name): \(gate.agreements) of "
                    + "\(gate.count) \(gate.unit), at least \(gate.minimumAgreements) needed"
                    + (gate.probability.map { ", binomial P \(fmt($0)))" } ?? ")"))
        }
        over("decode_nmae", m.decodeNMAE, t.decodeNMAE)
        over("greedy_max_rel", m.greedyMaxRelative, t.greedyMaxRelative)
        if t.greedyIDsIdentical && !m.greedyIDsIdentical {
            f.append("greedy ids differ from the golden ones (case \(m.name))")
        }
        if let e = m.ensembleNMAE { over("ensemble_nmae", e, t.ensembleNMAE) }
        return f
    }

    /// The share gates (s1 / s2 top-1, context ids) of one case (binomial) or of the pooled cases (the
    /// share itself), each with the count behind it (ShareGate).
    static func shareGates(_ m: DriftMetrics, _ t: VerifyThresholds, pooled: Bool) -> [ShareGate] {
        var gates = [ShareGate]()
        if let p = t.s1Top1 {
            gates.append(
                ShareGate("s1_top1", "steps", agreements: m.s1Agreements, count: m.steps, threshold: p, pooled: pooled))
        }
        if let p = t.s2Top1 {
            gates.append(
                ShareGate("s2_top1", "steps", agreements: m.s2Agreements, count: m.steps, threshold: p, pooled: pooled))
        }
        if let p = t.contextIDs {
            gates.append(
                ShareGate(
                    "context_ids_agree", "context rows", agreements: m.contextAgreements, count: m.contextRows,
                    threshold: p, pooled: pooled))
        }
        return gates
    }

    static func fmt(_ v: Double) -> String {
        v == 0 || (abs(v) >= 1e-3 && abs(v) < 1e4) ? String(format: "%.4f", v) : String(format: "%.3e", v)
    }
}

/// One golden case: settings, the reference's tensors, its input.
struct GoldenCase {
    let name: String
    let predLen: Int, maxContext: Int, rows: Int
    let xNorm: [Float], std: [Float], contextRecon: [Float], forecast: [Float]
    let contextS1: [Int], contextS2: [Int], genS1: [Int], genS2: [Int]
    let stepS1: [[Float]], stepS2: [[Float]]
    let stamps: [TimeStamp], futureStamps: [TimeStamp]
    let input: SeriesInput

    /// Largest pred_len / max_context a case may claim (the converter's own max-context bound).
    static let maxLength = 1 << 20

    /// Reads and validates one case against the model it will be run on: every count consistent,
    /// every value finite, ids within the vocabularies, time features within their tables, pred_len
    /// and max_context within limits; nothing from the files is used before it is checked.
    init(directory: String, name: String, s1Vocabulary V1: Int, s2Vocabulary V2: Int) throws {
        self.name = name
        let jsonPath = directory + "/\(name).json"
        func bad(_ file: String, _ field: String?, _ m: String) -> RuntimeError {
            .input(file: file, line: nil, column: field, message: m)
        }
        guard let data = try? InputFile.read(jsonPath, limit: 1 << 20),
            let settings = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let pn = settings["pred_len"] as? NSNumber, let mn = settings["max_context"] as? NSNumber
        else {
            throw bad(jsonPath, nil, "expected a case object with integer pred_len and max_context")
        }
        let limit = Self.maxLength
        guard let p = Int(exactly: pn.doubleValue), (1...limit).contains(p) else {
            throw bad(
                jsonPath, "pred_len", "expected an integer in 1...\(limit), found \(Terminal.safe(pn.description))")
        }
        guard let mc = Int(exactly: mn.doubleValue), (1...limit).contains(mc) else {
            throw bad(
                jsonPath, "max_context", "expected an integer in 1...\(limit), found \(Terminal.safe(mn.description))")
        }
        guard p <= mc else { throw bad(jsonPath, "pred_len", "\(p) exceeds max_context \(mc)") }
        predLen = p; maxContext = mc
        let f = try SafetensorsFile(path: directory + "/\(name).safetensors")
        func floats(_ k: String, count: Int) throws -> [Float] {
            guard let t = f[k] else { throw bad(f.path, k, "missing tensor \(k)") }
            guard t.elementCount == count else {
                throw bad(f.path, k, "expected \(count) values, found \(t.elementCount)")
            }
            let v = t.floats()
            if let i = v.firstIndex(where: { !$0.isFinite }) {
                throw bad(f.path, k, "value \(i) is \(v[i]), expected a finite number")
            }
            return v
        }
        func ints(_ k: String, count: Int, below bound: Int) throws -> [Int] {
            guard let t = f[k], t.dtype == .i64 else { throw bad(f.path, k, "missing int64 tensor \(k)") }
            guard t.elementCount == count else {
                throw bad(f.path, k, "expected \(count) ids, found \(t.elementCount)")
            }
            let v = t.int64s()
            if let i = v.firstIndex(where: { $0 < 0 || $0 >= Int64(bound) }) {
                throw bad(f.path, k, "id \(i) is \(v[i]), expected 0..<\(bound)")
            }
            return v.map { Int($0) }
        }
        guard let ctx = f["context_s1"], ctx.elementCount >= 1, ctx.elementCount <= limit else {
            throw bad(
                f.path, "context_s1", "expected 1...\(limit) context ids, found \(f["context_s1"]?.elementCount ?? 0)")
        }
        let T = ctx.elementCount
        rows = T
        contextS1 = try ints("context_s1", count: T, below: V1); contextS2 = try ints("context_s2", count: T, below: V2)
        genS1 = try ints("gen_s1", count: p, below: V1); genS2 = try ints("gen_s2", count: p, below: V2)
        xNorm = try floats("x_norm", count: T * 6); std = try floats("std", count: 6)
        contextRecon = try floats("context_recon", count: min(T, mc) * 6);
        forecast = try floats("forecast", count: p * 6)
        let l1 = try floats("step_s1_logits", count: p * V1), l2 = try floats("step_s2_logits", count: p * V2)
        stepS1 = (0..<p).map { Array(l1[($0 * V1)..<(($0 + 1) * V1)]) }
        stepS2 = (0..<p).map { Array(l2[($0 * V2)..<(($0 + 1) * V2)]) }
        func stampRows(_ k: String, _ n: Int) throws -> [TimeStamp] {
            let v = try floats(k, count: n * 5)
            return try (0..<n).map { r in
                var fields = [Int]()
                for (j, range) in TimeStamp.ranges.enumerated() {
                    let x = v[r * 5 + j]
                    guard let i = Int(exactly: x), range.contains(i) else {
                        throw bad(
                            f.path, k, "row \(r) \(TimeStamp.fieldNames[j]) is \(x), expected an integer in \(range)")
                    }
                    fields.append(i)
                }
                return TimeStamp(
                    minute: fields[0], hour: fields[1], weekday: fields[2], day: fields[3], month: fields[4])
            }
        }
        stamps = try stampRows("x_stamp", T); futureStamps = try stampRows("y_stamp", p)
        let table = try Candles.read(path: directory + "/\(name)_input.csv")
        guard table.rows == rows else {
            throw RuntimeError.input(
                file: table.file, line: nil, column: nil,
                message: "has \(table.rows) rows, the case's context has \(rows)")
        }
        input = SeriesInput(values: table.values, stamps: stamps, futureStamps: futureStamps)
    }
}
