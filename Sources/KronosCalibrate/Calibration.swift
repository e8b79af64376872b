// Calibration (kronos-convert --calibrate): runs the f32 model over windows of the user's candles and
// collects, for every matmul weight, the second moments of its input rows, E[x xᵀ] (the importance
// matrix the converter fits quantized blocks to, KronosConvert/Importance.swift).
//
// Per window of lookback + steps candle rows (normalized over the window's rows as a forecast
// normalizes its input; the statistics only need inputs on the model's scale):
//   tokenizer encoder + quant_embed over every row -> the window's ids;
//   predictor over the first `lookback` ids, then `steps` teacher-forced steps along the window's own
//   next ids (the decode-step inputs of the heads and the dependency layer, whose queries exist only
//   at a step); the engine runs the steps batched, as one pass, since they never slide the window
//   (ForecastEngine.teacherForcedLogits: the same rows and values as one step at a time, every
//   weight read once instead of once per step: 1.75 -> 1.45 s a window on Kronos-base);
//   tokenizer decoder + head over the window's ids (what a forecast decodes).
// The f32 model is the checkpoint's tensors in f32, built in memory (KronosConvert.f32Model).
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
/// the same rows share it: ImportanceMatrix.inputKey), summed in f64 across batches (thread-safe:
/// passes may run at once). Each input's rows go into an f32 Gram of the current batch (the engine's
/// Gram, accumulating) until `batchRows` of them, then into the f64 sums; observations of fewer than
/// `directRows` rows (a step's heads) wait in a buffer until they make a batch. The sums of a batch
/// are those of one Gram of all its rows, bit for bit, however the passes split them. Grams of 128
/// rows and a scalar f64 pass over the upper triangle per chunk cost more than the forward pass
/// itself on Kronos-base (2.8 against 1.1 s a window); batches of 512 rows take a quarter of that.
/// The batch's Gram is accumulated in place rather than its rows copied into a buffer first (a copy of
/// up to 4 MB per observation on Kronos-base; the time it saved was within the runs' noise).
public final class ActivationStatistics: ActivationObserver, @unchecked Sendable {
    public typealias Gram = @Sendable (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Bool) -> Void
    private struct Sums {
        let columns: Int
        // (large buffers in huge pages: about 900 MB on Kronos-base, filled at the first window)
        let gram: AlignedBuffer  // f64 Σ x xᵀ [columns, columns] of the finished batches, the upper triangle (j ≥ i)
        var rows = 0
        var batch: AlignedBuffer?  // the current batch's f32 Gram [columns, columns] (upper), made at its first use
        var batchRows = 0
        var pending: [Float] = []  // small observations' rows not yet in the batch [pendingRows, columns]
        var pendingRows = 0
        var flush: Gram?  // the engine's Gram of the last observation, for the rows left at the end
        init(columns: Int) {
            self.columns = columns
            // (not zeroed: the first batch's fold writes the upper triangle, all that is read; 600 MB
            // of zeroing on Kronos-base took about 0.2 s on one core)
            gram = AlignedBuffer(byteCount: 8 * columns * columns, zeroed: false, hugePages: true)
        }
        var sums: UnsafeMutablePointer<Double> { gram.bytes.baseAddress!.assumingMemoryBound(to: Double.self) }
    }
    private let sums = Mutex<[String: Sums]>([:])
    private let names = Mutex<Set<String>>([])
    static let batchRows = 512
    /// Observations of this many rows or more go into the batch's Gram at once.
    static let directRows = 64

    public init() {}

    public func observe(_ weight: String, _ x: UnsafePointer<Float>, rows: Int, columns: Int, gram: @escaping Gram) {
        names.withLock { _ = $0.insert(weight) }
        guard ImportanceMatrix.inputKey(weight) == weight else { return }  // the leader's rows count once
        // One observation at a time (the Gram runs on the engine's workers inside the lock).
        sums.withLock { all in
            var entry = all.removeValue(forKey: weight) ?? Sums(columns: columns)
            defer { all[weight] = entry }
            guard entry.columns == columns else { return }
            entry.flush = gram
            if rows >= Self.directRows {
                Self.addToBatch(&entry, x, rows: rows, gram: gram)
            } else {
                entry.pending.append(contentsOf: UnsafeBufferPointer(start: x, count: rows * columns))
                entry.pendingRows += rows
                if entry.pendingRows >= Self.batchRows { Self.addPending(&entry) }
            }
            if entry.batchRows >= Self.batchRows { Self.finishBatch(&entry) }
        }
    }

    /// Adds rows x [rows, columns] to the batch's Gram (called inside the lock).
    private static func addToBatch(_ entry: inout Sums, _ x: UnsafePointer<Float>, rows: Int, gram: Gram) {
        let n = entry.columns
        // (not zeroed: the batch's first Gram writes the upper triangle, all that is read)
        let batch = entry.batch ?? AlignedBuffer(byteCount: 4 * n * n, zeroed: false, hugePages: true)
        entry.batch = batch
        gram(x, rows, batch.bytes.baseAddress!.assumingMemoryBound(to: Float.self), entry.batchRows > 0)
        entry.batchRows += rows
    }

    /// Adds the waiting rows to the batch's Gram (called inside the lock).
    private static func addPending(_ entry: inout Sums) {
        guard entry.pendingRows > 0, let gram = entry.flush else { return }
        let count = entry.pendingRows
        entry.pending.withUnsafeBufferPointer { addToBatch(&entry, $0.baseAddress!, rows: count, gram: gram) }
        entry.pending.removeAll(keepingCapacity: true)
        entry.pendingRows = 0
    }

    /// Adds the batch's Gram to the f64 sums (called inside the lock).
    private static func finishBatch(_ entry: inout Sums) {
        guard entry.batchRows > 0, let batch = entry.batch else { return }
        foldUpper(
            batch.bytes.baseAddress!.assumingMemoryBound(to: Float.self), into: entry.sums, n: entry.columns,
            first: entry.rows == 0)
        entry.rows += entry.batchRows
        entry.batchRows = 0
    }

    /// s [n, n] (f64) += g [n, n] (f32) over the upper triangle, its rows interleaved across the cores
    /// (one core took 2.5 % of a calibration of Kronos-base, while the others waited).
    /// first: s is not yet written (its memory uninitialized): s = g instead.
    static func foldUpper(_ g: UnsafePointer<Float>, into s: UnsafeMutablePointer<Double>, n: Int, first: Bool) {
        let bands = n >= 256 ? 8 : 1
        BoundedParallel.forEach(bands, threads: ProcessInfo.processInfo.activeProcessorCount) { b in
            for i in stride(from: b, to: n, by: bands) {
                let gi = g + i * n, si = s + i * n
                if first {
                    for j in i..<n { si[j] = Double(gi[j]) }
                } else {
                    for j in i..<n { si[j] += Double(gi[j]) }
                }
            }
        }
    }

    /// The mean second moments [n, n] by input key, their rows, and every weight seen. Rows still
    /// waiting for a batch are added first. The keys are finished in parallel, each one's f64 sums
    /// freed once its moments are made (all of them held to the end: +300 MB peak on Kronos-base).
    public func result() -> (moments: [String: [Float]], rows: [String: Int], weights: Set<String>) {
        final class Entry: @unchecked Sendable {  // (each taken by one iteration)
            let key: String, rows: Int
            var sums: Sums?
            init(_ key: String, _ sums: Sums) { self.key = key; self.rows = sums.rows; self.sums = sums }
        }
        let entries = sums.withLock { all in
            all.keys.sorted().map { key in
                var e = all.removeValue(forKey: key)!
                Self.addPending(&e)
                Self.finishBatch(&e)
                e.batch = nil
                return Entry(key, e)
            }
        }
        let finished = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: entries.count)
        defer { finished.deallocate() }
        BoundedParallel.forEach(entries.count, threads: ProcessInfo.processInfo.activeProcessorCount) { k in
            let e = entries[k].sums!
            entries[k].sums = nil
            let n = e.columns, scale = 1 / Double(max(e.rows, 1)), sums = e.sums
            var m = [Float](repeating: 0, count: n * n)
            m.withUnsafeMutableBufferPointer { out in
                // (no rows: the sums were never written, and the moments are zero)
                for i in 0..<n where e.rows > 0 { for j in i..<n { out[i * n + j] = Float(sums[i * n + j] * scale) } }
                // the lower triangle from the upper, by 32 x 32 tiles (a column walk over a 2048-column
                // matrix misses the cache at every element: seconds for Kronos-base)
                for i0 in stride(from: 0, to: n, by: 32) {
                    for j0 in stride(from: 0, through: i0, by: 32) {
                        for i in i0..<min(n, i0 + 32) {
                            for j in j0..<min(i, j0 + 32) { out[i * n + j] = out[j * n + i] }
                        }
                    }
                }
            }
            (finished.baseAddress! + k).initialize(to: m)  // (each iteration its own slot)
        }
        var moments = [String: [Float]](), rows = [String: Int]()
        for (k, entry) in entries.enumerated() {
            moments[entry.key] = (finished.baseAddress! + k).move()
            rows[entry.key] = entry.rows
        }
        return (moments, rows, names.withLock { $0 })
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

        // The f32 model, built in memory from the checkpoint (until 2026-12 it ran from a temporary
        // f32 bundle written and read back: synthesized Kronos-base ready in 1.9 s, now 0.3-0.4 s).
        let start = Date()
        let model: (manifest: Manifest, tensors: [String: TensorData])
        do {
            model = try f32Model(
                checkpoint, maxContext: maxContext, threads: o.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        } catch { throw .conversion(error) }
        let engine: any ForecastBackend
        do {
            engine = try KronosModel.loadEngine(
                manifest: model.manifest, tensors: model.tensors, name: "the f32 model of the checkpoint",
                threads: o.threads)
        } catch { throw .runtime(error) }
        progress(.modelReady(seconds: Date().timeIntervalSince(start)))

        let statistics = ActivationStatistics()
        // (the passes' f32 values, not the decode steps' bits: the packed GEMM's sums, 87-92 % of the
        // f32 peak at 512 rows against 71-76 % in dot()'s order on Zen 3, kronos-bench kernels)
        engine.observeActivations(statistics, blockedSums: true)
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
