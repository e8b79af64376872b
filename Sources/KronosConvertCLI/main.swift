// kronos-convert: Hugging Face Kronos checkpoints -> quantized, zstd-compressed .kq bundle.
// Parses arguments and prints; the work is in KronosConvert. Exit codes: 0 ok, 1 bad input, 2 usage.
import ArgumentParser
import Foundation
import KronosBundle
import KronosCalibrate
import KronosCheckpoint
import KronosConvert
import KronosQuant
#if canImport(Glibc)
    import Glibc
#endif

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object instead of a table (for scripts).")
    var json = false
}

struct Root: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kronos-convert",
        abstract: "Convert Kronos tokenizer + predictor checkpoints (safetensors) into a quantized .kq bundle.",
        version: KronosVersion.string,
        subcommands: [Convert.self, Inspect.self],
        defaultSubcommand: Convert.self)
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert checkpoints into a bundle (the default subcommand).",
        discussion: """
            Example: kronos-convert --tokenizer tok/ --predictor model/ --quantize q8 --output btc-4h.kq
            Types: f32, f16, q8 (q8_0: 8.5 bits/weight), q4 (q4_k: 4.5 bits/weight for rows of 256k,
            q4_1: 5.0 for other rows; the predictor's heads, token embeddings and fusion at q6_0, its
            q/k projections at q5_0). Norms, biases, inv_freq stay f32, int64 buffers i64, the
            tokenizer's quant_embed f16 (q8, q4). --keep overrides per tensor (types f32, f16, q8, q6,
            q5, q4).
            Calibrated: kronos-convert --tokenizer tok/ --predictor model/ --quantize q4 \
              --calibrate candles.csv --imatrix-out btc-4h.imatrix -o btc-4h-q4.kq
            runs the f32 model over 64 windows of your candles and fits every quantized block to the
            activations the model sees (an importance matrix; reuse it with --imatrix).
            """)

    @Option(help: ArgumentHelp("Tokenizer checkpoint directory (config.json + model.safetensors).", valueName: "dir"))
    var tokenizer: String
    @Option(help: ArgumentHelp("Predictor checkpoint directory (config.json + model.safetensors).", valueName: "dir"))
    var predictor: String
    @Option(help: "Default type of matmul weights and embedding tables: f32, f16, q8 or q4.")
    var quantize: String = "q8"
    @Option(name: [.short, .long], help: ArgumentHelp("Bundle to write, e.g. btc-4h.kq.", valueName: "file"))
    var output: String
    @Option(
        help: ArgumentHelp(
            "Per-tensor override PATTERN=TYPE (glob on tensor names, repeatable), e.g. 'head.*=q8'.",
            valueName: "pattern=type"))
    var keep: [String] = []
    @Option(
        help:
            ArgumentHelp(
                "Model max context recorded in the bundle (default: config's max_context, else 2048 for Kronos-mini "
                    + "shapes, 512 otherwise).")
    )
    var maxContext: Int?
    @Option(help: "zstd compression level of the frames (1-19).")
    var zstdLevel: Int = 3
    @Option(help: "q4 scale-search steps per block (0 = plain min/max).")
    var q4SearchSteps: Int = BlockQ4_1.defaultSearchSteps
    @Option(
        help: ArgumentHelp(
            "Candles (CSV) to calibrate on (repeatable): quantized blocks minimise the error on the activations the "
                + "f32 model computes over them.", valueName: "file"))
    var calibrate: [String] = []
    @Option(help: "Calibration windows, spread evenly over the files' rows.")
    var calibrationWindows: Int = 64
    @Option(
        help: ArgumentHelp(
            "Context rows per calibration window, like a forecast's lookback (default: the window less 16, at most "
                + "496); 16 teacher-forced steps follow.", valueName: "rows"))
    var calibrationLookback: Int?
    @Option(help: ArgumentHelp("Importance matrix to read instead of calibrating.", valueName: "file"))
    var imatrix: String?
    @Option(help: ArgumentHelp("Write the calibration's importance matrix here (for --imatrix).", valueName: "file"))
    var imatrixOut: String?
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?
    @Flag(help: "Overwrite an existing bundle.")
    var force = false
    @OptionGroup var out: OutputOptions

    func validate() throws {
        guard QuantizeChoice(rawValue: quantize) != nil else {
            throw ValidationError("--quantize must be one of f32, f16, q8, q4; found \"\(quantize)\"")
        }
        guard (1...19).contains(zstdLevel) else {
            throw ValidationError("--zstd-level must be in 1...19, found \(zstdLevel)")
        }
        guard (0...64).contains(q4SearchSteps) else {
            throw ValidationError("--q4-search-steps must be in 0...64, found \(q4SearchSteps)")
        }
        if let m = maxContext, m < 1 { throw ValidationError("--max-context must be at least 1, found \(m)") }
        if let t = threads, !(1...256).contains(t) { throw ValidationError("--threads must be in 1...256, found \(t)") }
        for k in keep {
            do { _ = try KeepRule(parsing: k) } catch { throw ValidationError(error.localizedDescription) }
        }
        if !calibrate.isEmpty && imatrix != nil {
            throw ValidationError("--calibrate and --imatrix both give the importance matrix: use one")
        }
        if imatrixOut != nil && calibrate.isEmpty {
            throw ValidationError("--imatrix-out writes a calibration's importance matrix: add --calibrate FILE")
        }
        if (!calibrate.isEmpty || imatrix != nil) && (quantize == "f32" || quantize == "f16")
            && !keep.contains(where: { k in
                (try? KeepRule(parsing: k)).map { $0.type.traits.isQuantized } ?? false
            })
        {
            throw ValidationError(
                "--\(imatrix != nil ? "imatrix" : "calibrate") fits quantized blocks; --quantize \(quantize) has none "
                    + "(use q8 or q4)")
        }
        guard (1...CalibrationOptions.maxWindows).contains(calibrationWindows) else {
            throw ValidationError(
                "--calibration-windows must be in 1...\(CalibrationOptions.maxWindows), found \(calibrationWindows)")
        }
        if let l = calibrationLookback, l < 1 {
            throw ValidationError("--calibration-lookback must be at least 1, found \(l)")
        }
    }

    func run() throws {
        var options = ConversionOptions(output: output)
        options.quantize = QuantizeChoice(rawValue: quantize)!
        options.keep = try keep.map { try KeepRule(parsing: $0) }
        options.zstdLevel = zstdLevel
        options.q4SearchSteps = q4SearchSteps
        options.maxContext = maxContext
        options.force = force
        if let threads { options.threads = threads }
        TemporaryFiles.installSignalCleanup()
        let interactive = isatty(STDERR_FILENO) != 0 && !out.json
        let checkpoint: Checkpoint
        do { checkpoint = try Checkpoint(tokenizerDirectory: tokenizer, predictorDirectory: predictor) } catch {
            throw ConversionError.checkpoint(error)
        }
        let outputs = OutputSet()
        let imatrixTarget = try imatrixOut.map { try outputs.add($0, option: "--imatrix-out") }
        if let imatrix { options.importance = try ImportanceMatrix.load(path: imatrix) }
        if !calibrate.isEmpty {
            var c = CalibrationOptions(files: calibrate)
            c.windows = calibrationWindows
            c.lookback = calibrationLookback
            c.threads = threads
            let window = maxContext ?? checkpoint.configuredMaxContext ?? inferredMaxContext(checkpoint.config)
            let started = Date()
            let matrix = try Calibration.collect(checkpoint, maxContext: window, options: c) { event in
                guard interactive else { return }
                switch event {
                case let .read(file, rows):
                    FileHandle.standardError.write(Data("calibration: \(Terminal.safe(file)), \(rows) candles\n".utf8))
                case let .modelReady(seconds):
                    FileHandle.standardError.write(
                        Data("calibration: f32 model ready in \(String(format: "%.1f", seconds)) s\n".utf8))
                case let .window(done, total):
                    FileHandle.standardError.write(
                        Data("\r\u{1B}[Kcalibration: window \(done)/\(total)\(done == total ? "\n" : "")".utf8))
                }
            }
            if !out.json {
                print(
                    "calibration: \(matrix.calibration.windows) windows of \(matrix.calibration.lookback) + "
                        + "\(matrix.calibration.steps) rows, \(matrix.inputs.count) weights, "
                        + String(format: "%.1f s", Date().timeIntervalSince(started)))
            }
            if let imatrixTarget {
                try outputs.stage(imatrixTarget, Data(matrix.encoded()))
                try outputs.commit()
            }
            options.importance = matrix
        }
        let report = try KronosConvert.convert(checkpoint, options: options) { event in
            guard interactive else { return }
            switch event {
            case let .checked(n, bytes):
                FileHandle.standardError.write(Data("checked \(n) tensors, \(formatBytes(bytes)) of weights\n".utf8))
            case let .tensorDone(i, total, name, type):
                let line =
                    "\r\u{1B}[K[\(i)/\(total)] \(type.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)) "
                    + "\(name)"
                FileHandle.standardError.write(Data((line + (i == total ? "\n" : "")).utf8))
            }
        }
        if out.json {
            print(jsonString(report))
        } else {
            printSummary(report)
        }
    }

    func printSummary(_ r: ConversionReport) {
        for n in r.notes { print("note: \(Terminal.safe(n))") }
        let rows: [(String, String)] = [
            ("bundle", r.output),
            ("quantize", r.quantize.rawValue),
            ("tensors", "\(r.tensors)"),
            ("parameters", "\(r.parameters) (\(String(format: "%.2f", Double(r.parameters) / 1e6))M)"),
            ("source bytes", "\(r.sourceBytes) (\(formatBytes(r.sourceBytes)))"),
            ("bundle bytes", "\(r.bundleBytes) (\(formatBytes(r.bundleBytes)))"),
            ("ratio", String(format: "%.4f", r.ratio)),
            ("bits/weight", String(format: "%.3f", r.bitsPerWeight)),
            (
                "worst tensor",
                r.worstTensor.map { "\($0) rel RMSE \(String(format: "%.3e", r.worstRelativeRMSE))" }
                    ?? "none (lossless)"
            ),
            ("worst max |err|", String(format: "%.3e", r.worstMaxAbs)),
            ("max context", "\(r.maxContext)"),
            ("seconds", String(format: "%.3f", r.seconds)),
        ]
        let w = rows.map(\.0.count).max()!
        for (k, v) in rows { print(k.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + v) }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a bundle's manifest, configs and tensor table.",
        discussion: "Example: kronos-convert inspect btc-4h.kq --json")

    @Argument(help: ArgumentHelp("Bundle file (.kq).", valueName: "bundle"))
    var bundle: String
    @OptionGroup var out: OutputOptions

    func run() throws {
        let reader = try BundleReader(path: bundle)
        let m = reader.manifest
        if out.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            struct Out: Encodable { let file: String; let file_bytes: Int; let manifest: Manifest }
            print(
                String(
                    decoding: try encoder.encode(Out(file: bundle, file_bytes: reader.fileSize, manifest: m)),
                    as: UTF8.self))
            return
        }
        print("bundle      \(bundle) (\(reader.fileSize) bytes, format v\(m.formatVersion))")
        print("converter   \(Terminal.safe(m.converter.name)) \(Terminal.safe(m.converter.version))")
        print(
            "settings    quantize \(Terminal.safe(m.settings.quantize)), keep "
                + "[\(Terminal.safe(m.settings.keep.joined(separator: ", ")))], zstd level \(m.settings.zstdLevel), q4 "
                + "search steps \(m.settings.q4SearchSteps)"
        )
        if let c = m.settings.calibration {
            print(
                "calibration \(c.windows) windows of \(c.lookback) context rows + \(c.steps) steps, "
                    + "\(c.rows) activation rows per transformer matmul"
                    + (c.imatrixSHA256.map { ", importance matrix sha256 \(Terminal.safe($0))" } ?? ""))
            for f in c.files {
                print("calibrated  \(Terminal.safe(f.file)) \(f.rows) candles sha256 \(Terminal.safe(f.sha256))")
            }
        }
        print("max context \(m.maxContext)")
        print("tokenizer   \(jsonString(m.tokenizerConfig))")
        print("predictor   \(jsonString(m.predictorConfig))")
        for s in m.sources {
            print(
                "source      \(s.part.rawValue)/\(Terminal.safe(s.file)) \(s.bytes) bytes sha256 "
                    + "\(Terminal.safe(s.sha256))"
            )
        }
        for n in m.notes { print("note        \(Terminal.safe(n))") }
        print("")
        let header = ["part", "name", "type", "shape", "offset", "stored", "raw", "xxh64", "rel_rmse"]
        var table = [header]
        for t in m.tensors {
            table.append([
                t.part.rawValue, t.name, t.type.rawValue, t.shape.map(String.init).joined(separator: "x"),
                "\(t.offset)", "\(t.storedSize)", "\(t.rawSize)", t.xxh64,
                t.error.map { String(format: "%.3e", $0.relativeRMSE) } ?? "-",
            ])
        }
        let shown = table.map { $0.map(Terminal.safe) }  // tensor names come from the bundle
        let widths = (0..<header.count).map { c in shown.map { $0[c].count }.max()! }
        for row in shown {
            print(
                zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        let params = m.tensors.reduce(0) { $0 + $1.elementCount }
        print("\n\(m.tensors.count) tensors, \(params) parameters")
    }
}

func formatBytes(_ n: Int) -> String {
    let d = Double(n)
    if d >= Double(1 << 30) { return String(format: "%.2f GiB", d / Double(1 << 30)) }
    if d >= Double(1 << 20) { return String(format: "%.2f MiB", d / Double(1 << 20)) }
    if d >= Double(1 << 10) { return String(format: "%.1f KiB", d / Double(1 << 10)) }
    return "\(n) B"
}

func jsonString<T: Encodable>(_ v: T) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? String(decoding: e.encode(v), as: UTF8.self)) ?? "{}"
}

// Exit codes: 0 ok, 1 bad input (message on stderr), 2 usage.
do {
    var command = try Root.parseAsRoot()
    try command.run()
} catch let error as LocalizedError {
    // Strings from files are escaped (Terminal.safe); the message's own line breaks are kept.
    let message = (error.errorDescription ?? "\(error)").split(separator: "\n", omittingEmptySubsequences: false).map(
        Terminal.safe
    ).joined(separator: "\n")
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
} catch {
    let code = Root.exitCode(for: error)
    if code == .success {
        print(Root.fullMessage(for: error))
        exit(0)
    }
    FileHandle.standardError.write(Data((Root.fullMessage(for: error) + "\n").utf8))
    exit(2)
}
