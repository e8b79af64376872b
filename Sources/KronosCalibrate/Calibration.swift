// Calibration (kronos-convert --calibrate): runs the f32 model over windows of the user's candles and
// collects, for every matmul weight, the second moments of its input rows, E[x xᵀ] (the importance
// matrix the converter fits quantized blocks to, KronosConvert/Importance.swift).
//
// Per window of lookback + steps candle rows (normalized over the window's rows as a forecast
// normalizes its input; the statistics only need inputs on the model's scale):
//   tokenizer encoder + quant_embed over every row -> the window's ids;
//   predictor over the first `lookback` ids (one prefill), then `steps` teacher-forced steps along
//   the window's own next ids (one row each: the decode-step inputs of the heads and the dependency
//   layer, whose queries exist only at a step);
//   tokenizer decoder + head over the window's ids (what a forecast decodes).
// The f32 model runs from a temporary f32 bundle of the checkpoint, removed afterwards.
import Foundation
import Kronos
import KronosBundle
import KronosCheckpoint
import KronosConvert
import KronosEngineBaseline
import KronosEngineTypes
import Synchronization

public struct CalibrationOptions: Sendable {
    /// Candle files (CSV, as kronos-run reads them), in order.
    public var files: [String]
    /// Windows to run, spread evenly over the files' rows (in proportion to the windows each holds).
    public var windows = 64
    /// Context rows per window (nil: the model's window less `steps`, at most 512 - steps).
    public var lookback: Int?
    /// Rows after the context run one teacher-forced step at a time.
    public var steps = 16
    /// Threads the model runs on (nil: one per core).
    public var threads: Int?
    public init(files: [String]) { self.files = files }

    /// Most windows a calibration runs.
    public static let maxWindows = 4096
}

public enum CalibrationEvent: Sendable {
    case read(file: String, rows: Int)
    case modelReady(seconds: Double)
    case window(done: Int, total: Int)
}

public enum CalibrationError: Error, LocalizedError, Sendable {
    case options(String)
    case input(String)
    case conversion(ConversionError)
    case runtime(RuntimeError)
    public var errorDescription: String? {
        switch self {
        case let .options(m), let .input(m): return m
        case let .conversion(e): return e.errorDescription
        case let .runtime(e): return e.errorDescription
        }
    }
}

/// Second moments Σ x xᵀ of every observed weight's input rows, one per distinct input (weights fed
/// the same rows share it: ImportanceMatrix.inputKey), summed in f64 across passes (thread-safe:
/// passes may run at once). Rows that come a few at a time (a teacher-forced step's one row) wait
/// in a buffer until `batchRows` of them make one Gram matrix: a one-row Gram per step took 20 %
/// of a Kronos-base calibration.
final class ActivationStatistics: ActivationObserver, @unchecked Sendable {
    private struct Sums {
        var gram: [Double]
        var rows = 0
        var pending: [Float] = []  // rows not yet in gram [pendingRows, columns]
        var pendingRows = 0
    }
    private let sums = Mutex<[String: Sums]>([:])
    private let names = Mutex<Set<String>>([])
    private var scratch = [Float]()  // the Gram of one observation; used only inside `sums`' lock
    static let batchRows = 16

    func observe(
        _ weight: String, _ x: UnsafePointer<Float>, rows: Int, columns: Int,
        gram: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void
    ) {
        names.withLock { _ = $0.insert(weight) }
        guard ImportanceMatrix.inputKey(weight) == weight else { return }  // the leader's rows count once
        // One observation at a time (the Gram runs on the engine's workers inside the lock).
        sums.withLock { all in
            var entry = all.removeValue(forKey: weight) ?? Sums(gram: [Double](repeating: 0, count: columns * columns))
            defer { all[weight] = entry }
            guard entry.gram.count == columns * columns else { return }
            if rows < Self.batchRows {
                entry.pending.append(contentsOf: UnsafeBufferPointer(start: x, count: rows * columns))
                entry.pendingRows += rows
                if entry.pendingRows >= Self.batchRows {
                    let pending = entry.pending, count = entry.pendingRows
                    pending.withUnsafeBufferPointer { add(&entry, $0.baseAddress!, count, gram) }
                    entry.pending.removeAll(keepingCapacity: true)
                    entry.pendingRows = 0
                }
            } else {
                add(&entry, x, rows, gram)
            }
        }
    }

    private func add(
        _ entry: inout Sums, _ x: UnsafePointer<Float>, _ rows: Int,
        _ gram: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void
    ) {
        // (one scratch, grown to the largest input: observations run one at a time, under the lock)
        if scratch.count < entry.gram.count { scratch = [Float](repeating: 0, count: entry.gram.count) }
        let n = Int(Double(entry.gram.count).squareRoot())
        scratch.withUnsafeMutableBufferPointer { g in
            gram(x, rows, g.baseAddress!)
            entry.gram.withUnsafeMutableBufferPointer { s in  // the upper triangle (result() mirrors it)
                for i in 0..<n { for j in i..<n { s[i * n + j] += Double(g[i * n + j]) } }
            }
        }
        entry.rows += rows
    }

    /// The mean second moments [n, n] by input key, their rows, and every weight seen. Rows still
    /// waiting for a batch are added here, in f64.
    func result() -> (moments: [String: [Float]], rows: [String: Int], weights: Set<String>) {
        var all = sums.withLock { $0 }
        for (key, var e) in all where e.pendingRows > 0 {
            let n = Int(Double(e.gram.count).squareRoot())
            for r in 0..<e.pendingRows {
                for i in 0..<n {
                    let xi = Double(e.pending[r * n + i])
                    if xi == 0 { continue }
                    for j in i..<n { e.gram[i * n + j] += xi * Double(e.pending[r * n + j]) }
                }
            }
            e.rows += e.pendingRows
            e.pendingRows = 0
            all[key] = e
        }
        for (key, var e) in all {  // the lower triangle from the upper
            let n = Int(Double(e.gram.count).squareRoot())
            for i in 0..<n { for j in 0..<i { e.gram[i * n + j] = e.gram[j * n + i] } }
            all[key] = e
        }
        return (
            all.mapValues { e in e.gram.map { Float($0 / Double(max(e.rows, 1))) } }, all.mapValues(\.rows),
            names.withLock { $0 }
        )
    }
}

public enum Calibration {
    /// Runs `checkpoint`'s f32 model over windows of the calibration files and returns the
    /// importance matrix of its matmul weights. `maxContext`: the window the bundle will record.
    public static func collect(
        _ checkpoint: Checkpoint, maxContext: Int, options o: CalibrationOptions,
        progress: @escaping @Sendable (CalibrationEvent) -> Void = { _ in }
    ) throws(CalibrationError) -> ImportanceMatrix {
        guard !o.files.isEmpty else { throw .options("--calibrate: no calibration files") }
        guard (1...CalibrationOptions.maxWindows).contains(o.windows) else {
            throw .options("--calibration-windows must be in 1...\(CalibrationOptions.maxWindows), found \(o.windows)")
        }
        guard o.steps >= 1, o.steps < maxContext else {
            throw .options("calibration steps must be in 1...\(maxContext - 1), found \(o.steps)")
        }
        let lookback = o.lookback ?? min(maxContext, 512) - o.steps
        guard lookback >= 1, lookback + o.steps <= maxContext else {
            throw .options(
                "--calibration-lookback must be in 1...\(maxContext - o.steps) (the model's \(maxContext)-row window "
                    + "less \(o.steps) teacher-forced steps), found \(lookback)")
        }

        // The files, each read once: parsed and hashed from the same bytes.
        var tables = [CandleTable](), records = [CalibrationFile]()
        for path in o.files {
            let data: Data
            do { data = try InputFile.read(path, limit: Candles.maxFileBytes) } catch {
                throw .input("\(path): \(error.message)")
            }
            let table: CandleTable
            do { table = try Candles.parse(data, file: path) } catch { throw .runtime(error) }
            let minimum = o.steps + 16
            guard table.rows >= minimum else {
                throw .input(
                    "\(path): \(table.rows) candles; a calibration window needs at least \(minimum) "
                        + "(16 context rows and \(o.steps) steps)")
            }
            records.append(
                CalibrationFile(
                    file: URL(fileURLWithPath: path).lastPathComponent, rows: table.rows,
                    sha256: data.withUnsafeBytes { CheckpointDirectory.sha256($0) }))
            tables.append(table)
            progress(.read(file: path, rows: table.rows))
        }
        let windows = placeWindows(rows: tables.map(\.rows), count: o.windows, length: lookback + o.steps)

        // The f32 model, from a temporary bundle.
        let start = Date()
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kronos-calibrate-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).kq"
        ).path
        TemporaryFiles.register(temporary)
        defer {
            unlink(temporary)
            TemporaryFiles.unregister(temporary)
        }
        var f32 = ConversionOptions(output: temporary)
        f32.quantize = .f32; f32.keep = []; f32.zstdLevel = 1; f32.maxContext = maxContext
        do { _ = try convert(checkpoint, options: f32) } catch { throw .conversion(error) }
        let engine: any ForecastBackend
        do { engine = try KronosModel.loadEngine(path: temporary, threads: o.threads) } catch { throw .runtime(error) }
        unlink(temporary)  // loaded: the file is no longer needed
        progress(.modelReady(seconds: Date().timeIntervalSince(start)))

        let statistics = ActivationStatistics()
        engine.observeActivations(statistics)
        defer { engine.observeActivations(nil) }
        for (k, w) in windows.enumerated() {
            let table = tables[w.file]
            let length = min(lookback + o.steps, table.rows)
            let context = length - o.steps
            let rows = w.start..<(w.start + length)
            let values = Array(table.values[(rows.lowerBound * 6)..<(rows.upperBound * 6)])
            let x = KronosEngineBaseline.ForecastEngine.normalize(values, rows: length, clip: 5).normalized
            let stamps = table.times[rows].map { TimeStamp(wallClockSeconds: $0) }
            let ids = engine.encode(x, rows: length)
            _ = engine.teacherForcedLogits(
                contextS1: Array(ids.s1[..<context]), contextS2: Array(ids.s2[..<context]), stamps: stamps,
                pathS1: Array(ids.s1[context...]), pathS2: Array(ids.s2[context...]), maxContext: maxContext,
                cache: .exact, activations: .f32, kvCache: .f32)
            _ = engine.decode(s1: [ids.s1], s2: [ids.s2])
            progress(.window(done: k + 1, total: windows.count))
        }
        let (moments, counts, weights) = statistics.result()
        let behind = counts["predictor/transformer.0.self_attn.q_proj.weight"] ?? counts.values.max() ?? 0
        return ImportanceMatrix(
            moments: moments, rows: counts,
            inputs: Dictionary(uniqueKeysWithValues: weights.map { ($0, ImportanceMatrix.inputKey($0)) }),
            calibration: CalibrationRecord(
                files: records, windows: windows.count, lookback: lookback, steps: o.steps, rows: behind))
    }

    /// `count` windows of `length` rows over files of `rows` rows: each file gets windows in
    /// proportion to the window starts it holds (largest remainders; a file shorter than `length`
    /// holds one start and gets a window of all its rows), evenly spaced from its first row to its last
    /// start. Fewer windows than asked when the files hold fewer distinct starts.
    static func placeWindows(rows: [Int], count: Int, length: Int) -> [(file: Int, start: Int)] {
        let starts = rows.map { max(1, $0 - length + 1) }
        let total = starts.reduce(0, +)
        let wanted = min(count, total)
        var share = starts.map { $0 * wanted / total }
        var left = wanted - share.reduce(0, +)
        let byRemainder = starts.indices.sorted { a, b in
            (starts[a] * wanted % total, b) > (starts[b] * wanted % total, a)
        }
        for f in byRemainder where left > 0 && share[f] < starts[f] {
            share[f] += 1; left -= 1
        }
        var out = [(file: Int, start: Int)]()
        for (f, n) in share.enumerated() where n > 0 {
            for i in 0..<n {
                out.append((f, n == 1 ? (starts[f] - 1) / 2 : i * (starts[f] - 1) / (n - 1)))
            }
        }
        return out
    }
}
