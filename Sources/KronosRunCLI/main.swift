// kronos-run: forecast candlesticks from a .kq bundle. Parses arguments and prints; the work is in
// KronosWideEngine. Exit codes: 0 ok, 1 bad input (one line on stderr), 2 usage.
import ArgumentParser
import Foundation
import Kronos
import KronosIO
import KronosBundle
import KronosEval
import KronosVerify
#if canImport(Glibc)
    import Glibc
#endif

struct SamplingOptions: ParsableArguments {
    @Option(help: "Softmax temperature (> 0).")
    var temperature: Float = 1.0
    @Option(help: "Keep the k most likely ids (0 = off; 1 = greedy).")
    var topK: Int = 0
    @Option(help: "Nucleus sampling mass in (0, 1] (1 = off). Ignored when --top-k > 0.")
    var topP: Float = 0.9
    @Option(
        help:
            ArgumentHelp(
                "Paths sampled per series (one batch) and averaged, e.g. 20; > 1 adds quantiles and probabilities of "
                    + "closing up.")
    )
    var samples: Int = 1
    @Option(help: "Seed of the portable random generator (same seed, same output on any machine).")
    var seed: UInt64 = 0
}

extension CacheMode: ExpressibleByArgument {}
extension KVCachePrecision: ExpressibleByArgument {}
extension ActivationPrecision: ExpressibleByArgument {}

struct ExecutionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Key / value reuse between steps: exact (default: cache while the window grows, recompute \
            once it slides, as exact as the reference), recompute (every step, as the reference does), \
            approx-slide (APPROXIMATION: keep the cache when the window slides; much faster once \
            lookback + pred-len exceeds the window, drift measured by `verify --cache approx-slide`).
            """, valueName: "mode"))
    var cache: CacheMode = .exact
    @Option(
        help: ArgumentHelp(
            """
            Arithmetic of the predictor's q8_0 / q4_1 / q4_k matmuls: f32 (activations times the weights \
            dequantized in registers) or int8 (APPROXIMATION: activations quantized to int8 per 32 values, \
            products summed in integers, as ggml does; drift measured by `verify --activations int8`). \
            Default: int8 on processors with AVX-512 VNNI, where it is faster (Zen 4: prefill ~2x, \
            decode up to ~2x, about equal for q8 with several samples), f32 elsewhere. f32 / f16 weights always run f32.
            """, valueName: "precision"))
    var activations: ActivationPrecision?
    @Option(
        help: ArgumentHelp(
            """
            Precision of the predictor's cached keys / values: f32 (exact) or f16 (APPROXIMATION: half the \
            cache memory, e.g. 21 instead of 42 MiB per series for Kronos-base over 512 rows; drift \
            measured by `verify --kv-cache f16`). Default: f16 for q8 / q4 bundles, f32 for f32 / f16 ones.
            """, valueName: "precision"))
    var kvCache: KVCachePrecision?
}

struct Root: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kronos-run",
        abstract: "Forecast candlesticks with a Kronos .kq bundle.",
        version: KronosVersion.string,
        subcommands: [Forecast.self, VerifyCommand.self, BacktestCommand.self],
        defaultSubcommand: Forecast.self)
}

extension CalendarKind: ExpressibleByArgument {}

struct InputOptions: ParsableArguments {
    @Option(
        name: .customLong("input"),
        help: ArgumentHelp(
            """
            Candle CSV (repeatable: series forecast together). Comma, semicolon or tab separated, any line \
            endings; a header naming the timestamp (timestamps, timestamp, datetime, date, time, open_time) \
            and open, high, low, close, optionally volume and amount (or quote_asset_volume), in any case; \
            or Binance's headerless 12-column kline files.
            """, valueName: "file.csv"))
    var inputs: [String] = []
    @Option(
        help: ArgumentHelp(
            "The timestamp column, when its header name is not a usual one (a name, or a 1-based position).",
            valueName: "name"))
    var timeColumn: String?
    @Option(
        name: .customLong("column"),
        help: ArgumentHelp(
            "A field's column, e.g. close=Last or volume=\"Volume BTC\" (repeatable; fields: open, high, low, close, "
                + "volume, amount).",
            valueName: "field=name"))
    var columns: [String] = []

    func mapping() throws -> ColumnMapping {
        var m = ColumnMapping(time: timeColumn, spelling: .commandLine)
        for c in columns {
            guard let eq = c.firstIndex(of: "="), eq != c.startIndex, c.index(after: eq) != c.endIndex else {
                throw ValidationError("--column \"\(c)\": expected FIELD=NAME, e.g. close=Last")
            }
            m.fields[String(c[..<eq]).lowercased()] = String(c[c.index(after: eq)...])
        }
        return m
    }
}

struct Forecast: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forecast the next candles of one or more CSV series (the default subcommand).",
        discussion: """
            Examples:
              kronos-run btc-4h.kq --input candles.csv --pred-len 48
              kronos-run btc-4h.kq --input a.csv --input b.csv --pred-len 24 --samples 20 --top-p 0.9 \
                --seed 7 --format json
              kronos-run btc-4h.kq --input candles.csv --pred-len 48 --samples 100 \
                --quantiles 0.05,0.5,0.95 --paths paths.csv --chart forecast.svg
              kronos-run spx-1d.kq --input spx.csv --pred-len 10 --calendar weekdays
            Notes and warnings go to stderr (and into the JSON output); --quiet silences them. Outputs are \
            checked before the forecast runs; a regular file is replaced atomically, a symlink's target is \
            written, a device or FIFO is written in place; - is standard output.
            """)

    @Argument(help: ArgumentHelp("Bundle written by kronos-convert.", valueName: "bundle.kq"))
    var bundle: String
    @OptionGroup var input: InputOptions
    @Option(help: "Candles to forecast, e.g. 48.")
    var predLen: Int
    @Option(help: "Use the last N rows of each input (default: all), e.g. 512.")
    var lookback: Int?
    @Option(help: "Model window (default: the bundle's max context).")
    var maxContext: Int?
    @Option(help: "Spacing of future timestamps, e.g. 4h, 15m, 1d (default: the input's most common spacing).")
    var interval: String?
    @Option(
        help: ArgumentHelp(
            "Calendar of future timestamps: 24x7 or weekdays (default: weekdays when the input has no weekend rows).",
            valueName: "calendar"))
    var calendar: CalendarKind?
    @Option(
        help: ArgumentHelp(
            "Future timestamps from a file (one per line, or a CSV with a timestamp column): holidays, sessions, any "
                + "calendar.",
            valueName: "file"))
    var futureTimestamps: String?
    @OptionGroup var sampling: SamplingOptions
    @Option(
        help: ArgumentHelp(
            "Quantile levels of the sample paths, e.g. 0.05,0.25,0.5,0.75,0.95 (default 0.1,0.5,0.9; given, they also "
                + "become CSV columns).",
            valueName: "levels"))
    var quantiles: String?
    @OptionGroup var execution: ExecutionOptions
    @Option(help: "Output format: csv or json.")
    var format: String = "csv"
    @Option(
        name: [.short, .long],
        help: ArgumentHelp("Write the forecast here instead of stdout (- is stdout).", valueName: "file"))
    var output: String?
    @Option(
        help: ArgumentHelp(
            "Write every sample path as CSV: series, sample, timestamps, open, ..., amount.", valueName: "file.csv"))
    var paths: String?
    @Option(
        help: ArgumentHelp(
            "Draw the history, forecast, sample paths and quantile band as SVG; with several inputs a directory or a "
                + "pattern with {series}.",
            valueName: "file.svg"))
    var chart: String?
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?
    @Flag(help: "Print load and forecast seconds to stderr.")
    var timings = false
    @Flag(name: [.short, .long], help: "No notes or warnings on stderr (they stay in the JSON output).")
    var quiet = false

    func validate() throws {
        guard ["csv", "json"].contains(format) else {
            throw ValidationError("--format must be csv or json, found \"\(format)\"")
        }
        if input.inputs.isEmpty { throw ValidationError("give at least one --input file") }
        _ = try input.mapping()
        _ = try quantileLevels()
    }

    func quantileLevels() throws -> [Double]? {
        guard let quantiles else { return nil }
        return try quantiles.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)), v > 0, v < 1 else {
                throw ValidationError(
                    "--quantiles \"\(quantiles)\": expected levels in (0, 1) separated by commas, e.g. 0.05,0.5,0.95; "
                        + "found \"\(part)\""
                )
            }
            return v
        }
    }

    /// One chart path per input: the path itself for one input; a directory (existing, or ending in
    /// /) gets <input name>.svg per series; a pattern's {series} is replaced by the input's name.
    static func chartPaths(_ chart: String, inputs: [String]) throws -> [String] {
        var isDirectory: ObjCBool = false
        let directory =
            chart.hasSuffix("/")
            || (FileManager.default.fileExists(atPath: chart, isDirectory: &isDirectory) && isDirectory.boolValue)
        let names = ForecastJob.distinct(
            inputs.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }, mark: "-")
        if directory { return names.map { (chart as NSString).appendingPathComponent($0 + ".svg") } }
        if chart.contains("{series}") { return names.map { chart.replacingOccurrences(of: "{series}", with: $0) } }
        guard inputs.count == 1 else {
            throw ValidationError(
                "--chart \(chart): \(inputs.count) inputs make \(inputs.count) charts: give a directory (--chart "
                    + "charts/) "
                    + "or a pattern with {series} (--chart 'forecast-{series}.svg')")
        }
        return [chart]
    }

    func run() throws {
        if let t = threads, !(1...KronosModel.maxThreads).contains(t) {
            throw RunError.options(
                "--threads must be in 1...\(KronosModel.maxThreads) (4 per core on this machine, at least 8), found "
                    + "\(t)"
            )
        }
        TemporaryFiles.installSignalCleanup()  // staged outputs are removed on SIGINT / SIGTERM / SIGHUP
        var options = RunOptions(inputs: input.inputs, predictionLength: predLen)
        options.mapping = try input.mapping()
        options.lookback = lookback
        options.maxContext = maxContext
        options.interval = interval
        options.calendar = calendar
        options.futureTimestamps = futureTimestamps
        if let q = try quantileLevels() { options.quantiles = q; options.quantilesGiven = true }
        options.sampling = SamplingSettings(temperature: sampling.temperature, topK: sampling.topK, topP: sampling.topP)
        options.samples = sampling.samples
        options.seed = sampling.seed
        options.cache = execution.cache
        options.activations = execution.activations
        options.kvCache = execution.kvCache
        try options.check()
        // Every output is resolved before any work: a bad path fails now, not after the forecast.
        let outputs = OutputSet()
        let forecastTarget = try outputs.add(output ?? "-", option: "--output")
        let pathsTarget = try paths.map { p throws in try outputs.add(p, option: "--paths") }
        let chartTargets =
            try chart.map { c throws in
                try Self.chartPaths(c, inputs: input.inputs).map { p throws in try outputs.add(p, option: "--chart") }
            } ?? []
        let prepared = try ForecastJob.prepare(options)
        func say(_ kind: String, _ lines: [String]) {
            guard !quiet else { return }
            for line in lines { FileHandle.standardError.write(Data("\(kind): \(Terminal.safe(line))\n".utf8)) }
        }
        let model = try KronosModel(contentsOf: URL(fileURLWithPath: bundle), threads: threads)
        let threadWarning = model.threadWarning
        let advice = ForecastJob.advice(prepared: prepared, options: options, window: maxContext ?? model.maxContext)
        say("note", prepared.flatMap(\.notes) + advice.notes)
        say("warning", prepared.flatMap(\.warnings) + advice.warnings + (threadWarning.map { [$0] } ?? []))
        let interactive = isatty(STDERR_FILENO) != 0 && !quiet
        let start = Date()
        let result = try ForecastJob.run(model: model, prepared: prepared, options: options) { progress in
            guard interactive else { return }
            let (done, total) = (progress.step, progress.steps)
            let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-9)
            let line = "\r\u{1B}[Kstep \(done)/\(total) (\(String(format: "%.1f", rate)) steps/s)"
            FileHandle.standardError.write(Data((line + (done == total ? "\n" : "")).utf8))
        }
        if timings {
            let steps = Double(predLen) / max(result.forecastSeconds, 1e-9)
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "load %.3f s, forecast %.3f s (%.2f steps/s)\n", result.loadSeconds,
                        result.forecastSeconds, steps
                    ).utf8))
        }
        let text =
            format == "json"
            ? ForecastJob.json(result) + "\n" : ForecastJob.csv(result, quantileColumns: options.quantilesGiven)
        try outputs.stage(forecastTarget, Data(text.utf8))
        if let pathsTarget { try outputs.stage(pathsTarget, Data(ForecastJob.pathsCSV(result).utf8)) }
        let context = ChartContext(
            bundle: bundle, type: model.quantization, samples: options.samples, seed: options.seed,
            cache: options.cache.rawValue)
        for (k, target) in chartTargets.enumerated() {
            try outputs.stage(target, Data(ForecastChart.svg(result.series[k], context: context).utf8))
        }
        try outputs.commit()
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Measure a bundle's accuracy drift against golden FP32 cases; exit 1 when a threshold is exceeded.",
        discussion: """
            Examples:
              kronos-run verify btc-4h.kq --golden golden/tiny
              kronos-run verify btc-4h.kq --golden ../shared/reference/mini --json
            The golden directory has the layout of ../shared/reference/<model>: cases/<case>.json,
            <case>.safetensors, <case>_input.csv (and tokenizer/, predictor/ for the ensemble metric).
            Default thresholds depend on the bundle type (f32, f16, q8, q4); the flags override them.
            """)

    @Argument(help: ArgumentHelp("Bundle to check.", valueName: "bundle.kq"))
    var bundle: String
    @Option(help: ArgumentHelp("Golden directory (or one case .json file).", valueName: "dir"))
    var golden: String
    @Flag(help: "Print one JSON object.")
    var json = false
    @Option(help: "Sampled paths per case for ensemble_nmae.")
    var samples: Int = 8
    @Option(help: "Seed of the ensemble's random stream (shared by golden and bundle).")
    var seed: UInt64 = 1234
    @Flag(help: "Skip the ensemble metric.")
    var noEnsemble = false
    @Flag(help: "Write the golden f32 ensembles computed from DIR's checkpoints into DIR/cases.")
    var writeEnsembles = false
    @Option(help: "Gate: maximum s1 KL divergence.") var maxS1Kld: Double?
    @Option(help: "Gate: maximum s2 KL divergence.") var maxS2Kld: Double?
    @Option(help: "Gate: minimum share of steps whose argmax agrees (s1 and s2).") var minTop1: Double?
    @Option(help: "Gate: minimum share of context rows encoded to the golden ids.") var minContextIds: Double?
    @Option(help: "Gate: maximum decoder drift (mean abs error in std units).") var maxDecodeNmae: Double?
    @Option(help: "Gate: maximum ensemble_nmae.") var maxEnsembleNmae: Double?
    @Option(help: "Gate: maximum greedy_max_rel.") var maxGreedyRel: Double?
    @Option(help: "Gate: maximum bits per weight of the bundle.") var maxBitsPerWeight: Double?
    @OptionGroup var execution: ExecutionOptions

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
    }

    func run() throws {
        let reader = try BundleReader(path: bundle, verifyFrames: false)
        var t = VerifyThresholds.defaults(for: reader.manifest.settings.quantize)
        if let v = maxS1Kld { t.s1KLD = v }
        if let v = maxS2Kld { t.s2KLD = v }
        if let v = minTop1 { t.s1Top1 = v; t.s2Top1 = v }
        if let v = minContextIds { t.contextIDs = v }
        if let v = maxDecodeNmae { t.decodeNMAE = v }
        if let v = maxEnsembleNmae { t.ensembleNMAE = v }
        if let v = maxGreedyRel { t.greedyMaxRelative = v }
        if let v = maxBitsPerWeight { t.bitsPerWeight = v }
        var options = VerifyOptions()
        options.samples = samples; options.seed = seed; options.thresholds = t
        options.ensemble = !noEnsemble; options.writeEnsembles = writeEnsembles
        options.cache = execution.cache
        options.activations = execution.activations
        options.kvCache = execution.kvCache
        let report = try Verify.run(bundle: bundle, golden: golden, options: options)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try e.encode(report), as: UTF8.self))
        } else {
            printTable(report)
        }
        if !report.pass { throw VerifyFailure(failures: report.failures) }
    }

    func printTable(_ r: VerifyReport) {
        print(
            "bundle \(r.bundle) (\(r.type), \(String(format: "%.3f", r.bitsPerWeight)) bits/weight; cache "
                + "\(r.cache.rawValue), "
                + "activations \(r.activations.rawValue), kv cache \(r.kvCache.rawValue)) against \(r.golden)")
        let header = [
            "case", "steps", "s1_kld", "s2_kld", "s1_top1", "s2_top1", "ctx_ids", "decode_nmae", "greedy_nmae",
            "greedy_max_rel", "ids_same", "ensemble_nmae",
        ]
        func e(_ v: Double) -> String { String(format: "%.3e", v) }
        func p(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }
        let rows = (r.cases + [r.overall]).map { m in
            [
                m.name, "\(m.steps)", e(m.s1KLD), e(m.s2KLD), p(m.s1Top1), p(m.s2Top1), p(m.contextIDs),
                e(m.decodeNMAE),
                e(m.greedyNMAE), e(m.greedyMaxRelative), m.greedyIDsIdentical ? "yes" : "no",
                m.ensembleNMAE.map(e) ?? "-",
            ]
        }
        let t = r.thresholds
        func maxGate(_ v: Double?) -> String { v.map { "<= " + e($0) } ?? "-" }
        func minGate(_ v: Double?) -> String { v.map { ">= " + p($0) } ?? "-" }
        let gate = [
            "gate (\(r.type))", "", maxGate(t.s1KLD), maxGate(t.s2KLD), minGate(t.s1Top1), minGate(t.s2Top1),
            minGate(t.contextIDs),
            maxGate(t.decodeNMAE), "", maxGate(t.greedyMaxRelative), t.greedyIDsIdentical ? "yes" : "",
            maxGate(t.ensembleNMAE),
        ]
        let table = ([header] + rows + [gate]).map { $0.map(Terminal.safe) }  // case names come from files
        let widths = header.indices.map { c in table.map { $0[c].count }.max()! }
        for row in table {
            print(
                zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        // The counts behind each gated share, and the fewest agreements that pass (ShareGate).
        let alpha = String(format: "%g", ShareGate.significance)
        print(
            "shares: pooled, at least the threshold; per case, a one-sided binomial test (fails where "
                + "P(X <= agreements) < \(alpha)):")
        for m in r.cases + [r.overall] where !m.shareGates.isEmpty {
            let gates = m.shareGates.map {
                "\($0.metric) \($0.agreements)/\($0.count) \($0.unit) (needs >= \($0.minimumAgreements))"
            }
            print("  \(Terminal.safe(m.name)): " + gates.joined(separator: ", "))
        }
        for g in r.overall.shareGates where !g.resolves {
            print(
                "  note: \(g.count) pooled \(g.unit) do not resolve \(g.metric) >= \(p(g.threshold)): one "
                    + "disagreement alone fails it (\(Int((1 / (1 - g.threshold)).rounded(.up))) or more do)")
        }
        if let b = t.bitsPerWeight {
            print("bits per weight \(String(format: "%.3f", r.bitsPerWeight)) (gate <= \(String(format: "%.3f", b)))")
        }
        print(r.pass ? "PASS" : "FAIL: " + r.failures.joined(separator: "; "))
        print(Verify.summary(r))
    }
}

/// How `backtest` and `backtest merge` print the report.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json

    func render(_ report: BacktestReport) -> String {
        self == .json ? report.json() + "\n" : report.text()
    }
}

struct BacktestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Walk-forward evaluation of bundles against baselines (run, or merge shards).",
        subcommands: [BacktestRun.self, BacktestMerge.self],
        defaultSubcommand: BacktestRun.self)
}

struct BacktestMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Combine the partial results of `backtest --shard K/N` into the study's report.",
        discussion: """
            Example:
              for k in 1 2 3 4; do kronos-run backtest q8.kq --input btc.csv --shard $k/4 -o part$k.json & done; wait
              kronos-run backtest merge part*.json --format json -o report.json
            The merged report equals the unsharded run's, byte for byte.
            """)

    @Argument(help: ArgumentHelp("Partial results, one per shard, in any order.", valueName: "part.json"))
    var parts: [String]
    @Option(help: "table (default) or json.")
    var format: ReportFormat = .table
    @Option(name: [.short, .customLong("output")], help: "Write the report to this file (default: stdout).")
    var output: String?
    @Option(help: ArgumentHelp("Draw the merged report as SVG (as backtest --chart).", valueName: "file.svg"))
    var chart: String?

    func validate() throws {
        guard !parts.isEmpty else { throw ValidationError("give the partial results to merge") }
    }

    func run() throws {
        TemporaryFiles.installSignalCleanup()
        let outputs = OutputSet()
        let target = try outputs.add(output ?? "-", option: "--output")
        let chartTarget = try chart.map { p throws in try outputs.add(p, option: "--chart") }
        let partials = try parts.map { path throws in
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw RunError.input(
                    file: path, line: nil, column: nil, message: "cannot read: \(error.localizedDescription)")
            }
            return try BacktestPartial(json: data, file: path)
        }
        let report = try BacktestReport(merging: partials)
        try outputs.stage(target, Data(format.render(report).utf8))
        if let chartTarget { try outputs.stage(chartTarget, Data(report.svg().utf8)) }
        try outputs.commit()
    }
}

struct BacktestRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "Walk-forward evaluation: forecasts from rolling origins scored against what followed, beside baselines.",
        discussion: """
            Examples:
              kronos-run backtest btc-4h-q8.kq --input btcusdt_4h.csv --lookback 512 --pred-len 48 --stride 6 \\
                --samples 20
              kronos-run backtest f32.kq q8.kq q4.kq --input btcusdt_4h.csv --origins 300 --format json -o report.json
            Each origin is an ordinary forecast from the --lookback candles before it (nothing after it is read),
            with a seed drawn from --seed, the series and the origin's date: every bundle sees the same random
            numbers at the same origin, so their differences are paired. Scores (on --columns, close by default):
            MAE, RMSE, MAPE, MASE, directional hit rate, CRPS of the sample paths, weighted quantile loss,
            coverage of the 50 / 80 / 90 % bands, PIT; persistence and a log-normal random walk run on the same
            origins; Diebold-Mariano tests (Newey-West variance) compare bundles with each other and the baselines.
            """)

    @Argument(help: ArgumentHelp("Bundles to evaluate (compared pairwise).", valueName: "bundle.kq"))
    var bundles: [String]
    @OptionGroup var input: InputOptions
    @Option(help: "Candles of history before each origin.")
    var lookback: Int = 512
    @Option(help: "Steps forecast from each origin.")
    var predLen: Int = 48
    @Option(help: "Candles between origins.")
    var stride: Int = 1
    @Option(help: "Evenly spaced origins instead of a stride, e.g. 300.")
    var origins: Int?
    @Option(
        help: ArgumentHelp(
            "The columns scored, each on its own: open, high, low, close, volume, amount (comma-separated or "
                + "repeated, e.g. close,volume; not --column, which maps the CSV's headers).", valueName: "names"))
    var columns: [String] = []

    /// --columns as a list: comma-separated and repeatable, close when not given.
    var scoredColumns: [String] {
        let names = columns.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        return names.isEmpty ? ["close"] : names
    }
    @Option(
        help: ArgumentHelp(
            "Only origins from this date on, e.g. 2025-01-01 (UTC unless an offset is given).",
            valueName: "date"))
    var from: String?
    @Option(help: ArgumentHelp("Only origins up to this date (inclusive).", valueName: "date"))
    var to: String?
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var execution: ExecutionOptions
    @Option(help: "table (default) or json.")
    var format: ReportFormat = .table
    @Option(name: [.short, .customLong("output")], help: "Write the report to this file (default: stdout).")
    var output: String?
    @Option(
        help: ArgumentHelp(
            "Also write every (origin, forecaster, step) as CSV: series, origin, forecaster, step, truth, mean, "
                + "q10, q50, q90, crps.", valueName: "file.csv"))
    var perOrigin: String?
    @Option(
        help: ArgumentHelp(
            "Draw CRPS and MAE by step, band coverage and PIT histograms per forecaster as SVG.",
            valueName: "file.svg"))
    var chart: String?
    @Option(help: "Worker threads per model.")
    var threads: Int?
    @Option(
        help: ArgumentHelp(
            "Run shard K of N (every N-th block of 16 origins) and write its partial result as JSON, "
                + "for `backtest merge`.", valueName: "K/N"))
    var shard: String?
    @Option(
        help: ArgumentHelp(
            "Origins of a series forecast together, 1-16 (default: up to 128 paths, e.g. 6 with 20 samples). "
                + "Larger batches are faster without a slide and take more memory; the report is the same.",
            valueName: "n"))
    var batch: Int?
    @Flag(name: [.short, .long], help: "No progress on stderr.")
    var quiet = false

    /// --shard K/N as (K, N).
    func shardNumbers() throws -> (Int, Int) {
        guard let shard else { return (1, 1) }
        let parts = shard.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, k >= 1, k <= n else {
            throw ValidationError("--shard \(shard): expected K/N with 1 <= K <= N, e.g. 3/16")
        }
        return (k, n)
    }

    func validate() throws {
        _ = try shardNumbers()
        guard !bundles.isEmpty else { throw ValidationError("give at least one bundle") }
        guard lookback >= 2 else { throw ValidationError("--lookback must be at least 2, found \(lookback)") }
        guard predLen >= 1 else { throw ValidationError("--pred-len must be at least 1, found \(predLen)") }
        guard stride >= 1 else { throw ValidationError("--stride must be at least 1, found \(stride)") }
        if let n = origins, n < 1 { throw ValidationError("--origins must be at least 1, found \(n)") }
        guard sampling.samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        let scored = scoredColumns
        for c in scored where !Candles.columns.contains(c) {
            throw ValidationError(
                "--columns \(c): expected one of \(Candles.columns.joined(separator: ", "))"
                    + (c.contains("=") ? " (to map a CSV header, use --column \(c))" : ""))
        }
        guard Set(scored).count == scored.count else {
            throw ValidationError("--columns \(scored.joined(separator: ",")): each column once")
        }
        if let b = batch, !(1...Backtest.blockSize).contains(b) {
            throw ValidationError("--batch must be in 1...\(Backtest.blockSize), found \(b)")
        }
    }

    func run() throws {
        TemporaryFiles.installSignalCleanup()
        let outputs = OutputSet()
        let target = try outputs.add(output ?? "-", option: "--output")
        let rowsTarget = try perOrigin.map { p throws in try outputs.add(p, option: "--per-origin") }
        let chartTarget = try chart.map { p throws in try outputs.add(p, option: "--chart") }
        if chart != nil, shard != nil {
            throw ValidationError("--chart draws a whole study: give it to `backtest merge`, not to a shard")
        }
        let mapping = try input.mapping()
        let series = try input.inputs.map { path throws in
            try CandleSeries(contentsOf: URL(fileURLWithPath: path), columns: mapping)
        }
        let names = BacktestRun.names(bundles)
        let models = try zip(names, bundles).map { name, path throws in
            (name: name, model: try KronosModel(contentsOf: URL(fileURLWithPath: path), threads: threads))
        }
        var options = ForecastOptions(
            samples: sampling.samples, seed: sampling.seed, temperature: Double(sampling.temperature),
            topK: sampling.topK, topP: Double(sampling.topP))
        options.cache = execution.cache
        options.activations = execution.activations
        options.kvCache = execution.kvCache
        func date(_ s: String?, _ option: String) throws -> Date? {
            guard let s else { return nil }
            guard let d = Candles.date(s) else {
                throw ValidationError("\(option) \(s): expected a date such as 2025-01-01 or 2025-01-01 12:00")
            }
            return d
        }
        let plan = BacktestPlan(
            lookback: lookback, steps: predLen, stride: stride, origins: origins, fields: scoredColumns,
            from: try date(from, "--from"), to: try date(to, "--to"))
        let interactive = isatty(STDERR_FILENO) != 0 && !quiet
        let start = Date()
        let (k, n) = try shardNumbers()
        var rows = rowsTarget == nil ? "" : OriginRow.csvHeader + "\n"
        let partial = try Backtest(plan: plan, options: options, originsPerBatch: batch).runShard(
            models, series: series, shard: k, of: n,
            perOrigin: rowsTarget == nil ? nil : { rows += $0.csv + "\n" }
        ) { done, total in
            // done / total count forecasts: origins × bundles.
            guard interactive else { return }
            let elapsed = Date().timeIntervalSince(start), rate = Double(done) / max(elapsed, 1e-9)
            let eta = Double(total - done) / max(rate, 1e-9), perBundle = Double(models.count)
            let line =
                "\r\u{1B}[Korigins \(String(format: "%.0f", Double(done) / perBundle))/\(total / models.count) "
                + "(\(String(format: "%.2f", rate / perBundle)) origins/s, ETA \(String(format: "%.0f", eta)) s)"
            FileHandle.standardError.write(Data((line + (done == total ? "\n" : "")).utf8))
        }
        let text: String
        if shard != nil {
            text = partial.json() + "\n"
        } else {
            let report = try BacktestReport(merging: [partial])
            text = format.render(report)
            if let chartTarget { try outputs.stage(chartTarget, Data(report.svg().utf8)) }
        }
        try outputs.stage(target, Data(text.utf8))
        if let rowsTarget { try outputs.stage(rowsTarget, Data(rows.utf8)) }
        try outputs.commit()
    }

    /// Each bundle's name in the report: its file name without .kq, made unique with its directory
    /// when two share a name.
    static func names(_ paths: [String]) -> [String] {
        let stems = paths.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
        return zip(paths, stems).map { path, stem in
            stems.filter { $0 == stem }.count > 1 ? (path as NSString).deletingPathExtension : stem
        }
    }
}

struct VerifyFailure: LocalizedError {
    let failures: [String]
    var errorDescription: String? { "drift above threshold: " + failures.joined(separator: "; ") }
}

do {
    var command = try Root.parseAsRoot()
    try command.run()
} catch let error as LocalizedError {
    // One line, strings from files escaped (Terminal.safe).
    func oneLine(_ s: String) -> String { s.replacingOccurrences(of: "\n", with: " ") }
    FileHandle.standardError.write(
        Data(
            "error: \(Terminal.safe(oneLine(error.errorDescription ?? "\(error)")))\n"
                .utf8))
    exit(1)
} catch {
    let code = Root.exitCode(for: error)
    if code == .success { print(Root.fullMessage(for: error)); exit(0) }
    FileHandle.standardError.write(Data((Root.fullMessage(for: error) + "\n").utf8))
    exit(2)
}
