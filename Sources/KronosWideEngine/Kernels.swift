// Numeric kernels of the runtime (scalar / portable-SIMD path). Every kernel states its contract.
// The order of every reduction depends only on the vector length, never on how many rows are
// processed together, so a KV-cached step is bitwise equal to recomputing the window.
import Foundation
import KronosQuant
import CKronosHints
import KronosWideVNNI
import KronosWideAVX2

/// A weight matrix as stored in the bundle: `rows` rows of `columns` elements of `type`.
public struct WeightMatrix: @unchecked Sendable {
    public let type: TensorType
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int

    public init(type: TensorType, rows: Int, columns: Int, data: UnsafeRawPointer) {
        self.type = type; self.rows = rows; self.columns = columns; self.data = data
        rowBytes = type.rowBytes(columns: columns)!
    }

    @inline(__always) public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Row r as f32 into out [columns]. The embedding and time-table lookups index rows with ids
    /// and time features: checked here as a last line of defence (every reader validates them
    /// first, with a message; this traps instead of reading outside the table).
    /// (The engine's own in-register decoders, compiled into each build of the engine: the same
    /// floats as KronosQuant's `TensorType.decodeRow`, which carries no CPU flags; calling it cost a
    /// prefill 15-29 % on x86-64-v3, measured with kronos-bench forecast.)
    @inline(__always) public func decodeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) outside a table of \(rows) rows")
        type.withRowDecoder(DecodeRowTask(row: row(r), columns: columns, out: out))
    }
}

// dot(a [n], b [n]) -> scalar. Fixed summation order: one 8-lane fused multiply-add accumulator
// over k in steps of 8, its lanes summed, then the tail. The GEMM tile kernel below uses exactly
// this order for every (row, column) pair, so results never depend on how rows are grouped.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 8 <= n {
        acc.addProduct(
            ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self),
            rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

// C [2, 4] = A [4, n] (rows a0...a3) . B [2, n] (rows b0, b1), each pair in dot()'s order.
// 8 accumulators + 4 A vectors + 1 B vector fit the 16 AVX2 registers.
@inline(__always)
func tile4x2(
    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ n: Int,
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, bias: SIMD4<Float>
) {
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>(), c03 = SIMD8<Float>()
    var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>(), c13 = SIMD8<Float>()
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    let sa = 4 * lda, sb = 4 * ldb
    var k = 0
    while k + 8 <= n {
        let o = 4 * k
        let a0 = ra.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let a1 = ra.loadUnaligned(fromByteOffset: o + sa, as: SIMD8<Float>.self)
        let a2 = ra.loadUnaligned(fromByteOffset: o + 2 * sa, as: SIMD8<Float>.self)
        let a3 = ra.loadUnaligned(fromByteOffset: o + 3 * sa, as: SIMD8<Float>.self)
        let b0 = rb.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        c00.addProduct(a0, b0); c01.addProduct(a1, b0); c02.addProduct(a2, b0); c03.addProduct(a3, b0)
        let b1 = rb.loadUnaligned(fromByteOffset: o + sb, as: SIMD8<Float>.self)
        c10.addProduct(a0, b1); c11.addProduct(a1, b1); c12.addProduct(a2, b1); c13.addProduct(a3, b1)
        k += 8
    }
    var r0 = SIMD4<Float>(c00.sum(), c01.sum(), c02.sum(), c03.sum())
    var r1 = SIMD4<Float>(c10.sum(), c11.sum(), c12.sum(), c13.sum())
    while k < n {
        let av = SIMD4<Float>(a[k], a[lda + k], a[2 * lda + k], a[3 * lda + k])
        r0 += av * b[k]; r1 += av * b[ldb + k]
        k += 1
    }
    r0 += bias; r1 += bias
    for j in 0..<4 { c[j] = r0[j]; c[ldc + j] = r1[j] }
}

// C [3, 4] = A [4, n] (rows a0...a3) . B [3, n] (rows b0, b1, b2), each pair in dot()'s order.
// 12 accumulators + 3 B vectors + 1 streamed A vector fill the 16 AVX2 registers: 7 loads per 12
// fused multiply-adds (tile4x2: 6 per 8). Never inlined: inside a caller with more live values
// (the q4_k specialization of matmul) the accumulators spilled to the stack (q4_k 143 -> 66 GFLOP/s).
@inline(never)
func tile4x3(
    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ n: Int,
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, bias: SIMD4<Float>
) {
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>(), c03 = SIMD8<Float>()
    var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>(), c13 = SIMD8<Float>()
    var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c22 = SIMD8<Float>(), c23 = SIMD8<Float>()
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    let sa = 4 * lda, sb = 4 * ldb
    var k = 0
    while k + 8 <= n {
        let o = 4 * k
        let b0 = rb.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let b1 = rb.loadUnaligned(fromByteOffset: o + sb, as: SIMD8<Float>.self)
        let b2 = rb.loadUnaligned(fromByteOffset: o + 2 * sb, as: SIMD8<Float>.self)
        let a0 = ra.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        c00.addProduct(a0, b0); c10.addProduct(a0, b1); c20.addProduct(a0, b2)
        let a1 = ra.loadUnaligned(fromByteOffset: o + sa, as: SIMD8<Float>.self)
        c01.addProduct(a1, b0); c11.addProduct(a1, b1); c21.addProduct(a1, b2)
        let a2 = ra.loadUnaligned(fromByteOffset: o + 2 * sa, as: SIMD8<Float>.self)
        c02.addProduct(a2, b0); c12.addProduct(a2, b1); c22.addProduct(a2, b2)
        let a3 = ra.loadUnaligned(fromByteOffset: o + 3 * sa, as: SIMD8<Float>.self)
        c03.addProduct(a3, b0); c13.addProduct(a3, b1); c23.addProduct(a3, b2)
        k += 8
    }
    var r0 = SIMD4<Float>(c00.sum(), c01.sum(), c02.sum(), c03.sum())
    var r1 = SIMD4<Float>(c10.sum(), c11.sum(), c12.sum(), c13.sum())
    var r2 = SIMD4<Float>(c20.sum(), c21.sum(), c22.sum(), c23.sum())
    while k < n {
        let av = SIMD4<Float>(a[k], a[lda + k], a[2 * lda + k], a[3 * lda + k])
        r0 += av * b[k]; r1 += av * b[ldb + k]; r2 += av * b[2 * ldb + k]
        k += 1
    }
    r0 += bias; r1 += bias; r2 += bias
    for j in 0..<4 { c[j] = r0[j]; c[ldc + j] = r1[j]; c[2 * ldc + j] = r2[j] }
}

/// A parallel kernel body: (arguments, worker, chunk). It reads everything it needs from the
/// arguments (a pointer to the caller's argument struct) and captures nothing, so handing it to the
/// worker threads allocates nothing: a decode step's ~60 kernel calls stay allocation-free.
typealias ChunkBody = (UnsafeRawPointer, Int, Range<Int>) -> Void

/// Workers for `count` items of at least `minimumPerChunk` each, at most `threads` (1: run on the
/// calling thread).
@inline(__always)
func chunkWorkers(_ count: Int, minimumPerChunk: Int, threads: Int) -> Int {
    min(threads, max(1, count / max(minimumPerChunk, 1)))
}

/// Runs `body(&arguments, worker, chunk)` over `count` items split into contiguous chunks across
/// up to `threads` cores; `worker` (0 ..< threads) is unique among the chunks running at the same
/// time, so it indexes per-worker scratch. The calling thread runs chunk 0; the others go to the
/// persistent WorkerPool (or, when another thread is using the pool, to Dispatch). `body` must
/// capture nothing (a capture would put its context on the heap at every call).
@inline(__always)
func parallelChunks<Arguments>(
    _ count: Int, minimumPerChunk: Int = 1, threads: Int, arguments: Arguments, _ body: @escaping ChunkBody
) {
    withUnsafePointer(to: arguments) { p in
        let raw = UnsafeRawPointer(p)
        let workers = chunkWorkers(count, minimumPerChunk: minimumPerChunk, threads: threads)
        if workers <= 1 { body(raw, 0, 0..<count); return }
        let per = (count + workers - 1) / workers
        let pool = WorkerPool.shared
        if workers - 1 > pool.threadCount {
            // Fewer kernel threads started than asked for (a system limit): the chunks run here,
            // one after the other, rather than waiting on threads that cannot be created.
            for w in 0..<workers { let lo = w * per, hi = min(count, lo + per); if lo < hi { body(raw, w, lo..<hi) } }
        } else if !pool.run(workers: workers, count: count, per: per, arguments: raw, body) {
            // The pool is busy with another caller (two forecasts at once, from a library user).
            let task = UncheckedSendable((raw, body))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = w * per, hi = min(count, lo + per)
                if lo < hi { task.value.1(task.value.0, w, lo..<hi) }
            }
        }
    }
}

/// The closure form of parallelChunks, for work outside the decode loop (prefill-sized passes): the
/// closure's context is copied to the heap once per call when it runs on several cores.
@inline(__always)
func parallelChunks(_ count: Int, minimumPerChunk: Int = 1, threads: Int, _ body: (Int, Range<Int>) -> Void) {
    if chunkWorkers(count, minimumPerChunk: minimumPerChunk, threads: threads) <= 1 { body(0, 0..<count); return }
    withoutActuallyEscaping(body) { escapable in
        parallelChunks(count, minimumPerChunk: minimumPerChunk, threads: threads, arguments: escapable) {
            raw, worker, range in
            raw.load(as: ((Int, Range<Int>) -> Void).self)(worker, range)
        }
    }
}

/// Hands a value to concurrent iterations that only read shared state or write disjoint ranges.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The kernels' threads. There is no process-wide thread setting: each model (and each workspace
/// made for it) carries its own count; the threads themselves are one pool per process, grown to
/// the largest count any model asked for.
public enum Runtime {
    /// Threads a model uses when asked for none: one per core.
    public static var defaultThreads: Int { EngineLimits.defaultThreads }
    /// Most threads a model may ask for (EngineLimits.maxThreads).
    public static var maxThreads: Int { EngineLimits.maxThreads }

    /// Starts the kernel threads a run on `threads` threads needs (the caller's included) and
    /// returns how many it can use: fewer when the system refused to create more (a process or
    /// memory limit), the run then continuing on those.
    public static func startThreads(_ threads: Int) -> Int {
        precondition(threads >= 1)
        return WorkerPool.shared.prepare(threads: threads - 1) + 1
    }
}

/// Per-worker scratch of the kernels, allocated once (per forecast, per tokenizer pass, per benchmark)
/// so that no kernel call allocates: `floatsPerWorker` floats for each of `workers` threads.
/// One workspace serves one caller at a time (a forecast owns its own).
public final class Workspace: @unchecked Sendable {
    /// Threads the kernels run with this workspace split their work across.
    public let workers: Int
    public let floatsPerWorker: Int
    private let base: UnsafeMutablePointer<Float>

    public init(floatsPerWorker: Int, threads: Int) {
        workers = max(1, threads)
        self.floatsPerWorker = (max(floatsPerWorker, 16) + 15) / 16 * 16  // 64-byte multiples
        base = arena.buffer(count: workers * self.floatsPerWorker)
    }
    private let arena = ScratchArena()  // owns the workers' scratch and the activation buffers

    /// Scratch needed by matmul over rows of up to `columns` values and by attention over up to
    /// `positions` keys (with heads of `headDimension` columns: also the 512-bit prefill attention's).
    public convenience init(columns: Int, positions: Int, headDimension: Int = 0, threads: Int) {
        let wide =
            headDimension > 0 && Kernels.wideAttention
            ? KVCache.wideScratch(positions: positions, headDimension: headDimension) : 0
        self.init(
            floatsPerWorker: max(
                matmulGroup * columns,
                (repackedGroupBytes(columns: columns) + 3) / 4, attentionQueryBlock * positions, wide),
            threads: threads)
    }

    /// q8_0, q4_1 and q4_k weights multiply int8-quantized activations (IntegerActivations.swift) in
    /// the kernels run with this workspace: an approximation (whether a forecast takes it:
    /// ActivationPrecision, ForecastEngine.defaultActivations).
    public var integerActivations = false
    /// Sees the input rows of every Linear run with this workspace (calibration); nil in forecasts.
    public var observer: (any ActivationObserver)?
    /// f32 matmuls of packedGemmMinimumRows rows or more take the packed GEMM (PackedGemm.swift),
    /// where Kernels.packedGemm: each sum in depth order instead of dot()'s, so a pass's rows are no
    /// longer the decode steps' bits; for calibration, whose statistics need the f32 values only.
    public var blockedSums = false
    var gemmScratchBase: UnsafeMutablePointer<Float>?  // PackedGemm.swift: Workspace.gemmScratch
    /// With blockedSums: the model's weights already in the packed GEMM's panels (PackedGemm.swift).
    var weightPanels: WeightPanels?
    /// A buffer of `count` floats that lives as long as the workspace.
    func arenaBuffer(count: Int) -> UnsafeMutablePointer<Float> { arena.buffer(count: count) }
    /// The kernels the integer path runs (the fastest this processor has; tests choose others).
    var integerKernels = Kernels.IntegerKernels.native
    private var activationCodes: UnsafeMutablePointer<Int8>?
    private var activationScales: UnsafeMutablePointer<Float>?
    private var activationSums: UnsafeMutablePointer<Int32>?
    private var activationCapacity = 0

    /// The input whose quantized activations the buffers hold, while `sharingQuantizedInput` runs.
    private var quantized: (x: UnsafePointer<Float>, rows: Int, columns: Int)?
    private var sharing = false

    /// Runs `body`, in which integer-path matmuls of one input (the same pointer, rows and columns:
    /// q, k and v of a block, or w1 and w3) quantize it once. The caller must not write that input
    /// inside `body`. The results are the same as without: the quantization is a function of the input.
    func sharingQuantizedInput(_ body: () -> Void) {
        sharing = true
        defer { sharing = false; quantized = nil }
        body()
    }

    /// Whether x [rows, columns] must be quantized into the buffers (false: they already hold it,
    /// within sharingQuantizedInput); the buffers then hold it.
    func needsQuantizing(_ x: UnsafePointer<Float>, rows: Int, columns: Int) -> Bool {
        if sharing, let q = quantized, q.x == x, q.rows == rows, q.columns == columns { return false }
        quantized = sharing ? (x, rows, columns) : nil
        return true
    }

    /// Buffers for `rows` rows of `columns` quantized activations (codes [rows, columns], scales and
    /// block sums [rows, columns / 32]); grown when a larger matmul comes, never shrunk (a decode
    /// loop allocates nothing).
    func activations(rows: Int, columns: Int)
        -> (codes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Int32>)
    {
        let count = rows * columns
        if count > activationCapacity {
            activationCapacity = max(count, 2 * activationCapacity)
            let blocks = activationCapacity / activationBlock + 1
            activationCodes = arena.regrow(activationCodes, count: activationCapacity)
            activationScales = arena.regrow(activationScales, count: blocks)
            activationSums = arena.regrow(activationSums, count: blocks)
        }
        return (activationCodes!, activationScales!, activationSums!)
    }

    @inline(__always) func scratch(_ worker: Int) -> UnsafeMutablePointer<Float> {
        precondition(worker < workers)
        return base + worker * floatsPerWorker
    }
}

/// Weight rows per group of the batched (prefill) path: decoded once, multiplied with every input row.
let matmulGroup = 4
/// Input rows up to which matmul takes the in-register matvecs; more take the batched path. f32 / f16
/// rows: matvec8 per input row up to matvecMaxRows; block types: matvec8 for 1 row, matvecRows
/// for 2 ... blockMatvecMaxRows (e.g. the samples of a decode step).
let matvecMaxRows = 3
/// Bytes of input rows an f32 prefill GEMM multiplies against all of its weight groups at a time: a
/// part of L2 (512 KiB per core on Zen 3; 192 KiB measured 77 % of the f32 peak at 832 columns against
/// 71-73 % for all the rows at once, 96 and 384 KiB within the noise of it).
let f32RowBlockBytes = 192 << 10
let blockMatvecMaxRows = 6

/// The arguments of one matmul call, for its capture-free parallel body.
struct MatmulArguments {
    let w: WeightMatrix
    let bias: UnsafePointer<Float>?
    let x: UnsafePointer<Float>
    let rows: Int
    let y: UnsafeMutablePointer<Float>
    let workspace: Workspace
    init(
        _ w: WeightMatrix, _ bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, _ rows: Int,
        _ y: UnsafeMutablePointer<Float>,
        _ workspace: Workspace
    ) {
        self.w = w; self.bias = bias; self.x = x; self.rows = rows; self.y = y; self.workspace = workspace
    }
    var values: (WeightMatrix, UnsafePointer<Float>?, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) {
        (w, bias, x, rows, y)
    }
}

// Y [rows, W.rows] = X [rows, W.columns] @ W^T (+ bias [W.rows])
// Every (input row, weight row) pair is summed in dot()'s order whichever path computes it:
// - 2 ... blockMatvecMaxRows rows of block-type weights (a decode step of several samples): 2 weight
//   rows at a time, dequantized in registers once for all the input rows (matvecRows);
// - otherwise up to matvecMaxRows rows (decode): per input row, 8 weight rows at a time, dequantized
//   in registers straight from the stored rows (RowDecoder), 8 independent accumulators;
// - more rows (prefill, batches): 4 weight rows at a time decoded once into the worker's scratch
//   (f32 rows are used in place), then the 4x2 register tile over the input rows.
// Weight-row groups are split across the cores.
package func matmul(
    _ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int,
    _ y: UnsafeMutablePointer<Float>, workspace: Workspace
) {
    if workspace.integerActivations && w.type.hasIntegerCodes {
        integerMatmul(w, bias: bias, x, rows: rows, y, workspace: workspace)
        return
    }
    struct FloatMatmul: RowDecoderTask {
        let w: WeightMatrix, bias: UnsafePointer<Float>?, x: UnsafePointer<Float>, rows: Int
        let y: UnsafeMutablePointer<Float>, workspace: Workspace
        @inline(__always) func run<D: RowDecoder>(_: D.Type) {
            matmul(D.self, w, bias: bias, x, rows: rows, y, workspace: workspace)
        }
    }
    w.type.withRowDecoder(FloatMatmul(w: w, bias: bias, x: x, rows: rows, y: y, workspace: workspace))
}

@inline(__always)
private func matmul<D: RowDecoder>(
    _ decoder: D.Type, _ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>,
    rows: Int, _ y: UnsafeMutablePointer<Float>, workspace: Workspace
) {
    let n = w.columns, out = w.rows
    let big = out * rows * n >= 1 << 16  // below this, one core is faster than waking a second
    // Block types only: for f32 / f16 rows (no software prefetch; f32 multiplies in place in the
    // tiles) matvecRows measured slower in the model than their former paths (small, 5 samples:
    // f32 128 -> 108, f16 166 -> 146 decode steps/s), so they keep those.
    if D.prefetchesRows && rows >= 2 && rows <= blockMatvecMaxRows {
        switch rows {
        case 2: matvecRows(D.self, TwoInputRows.self, w, bias: bias, x, y, big: big, workspace: workspace)
        case 3: matvecRows(D.self, ThreeInputRows.self, w, bias: bias, x, y, big: big, workspace: workspace)
        case 4: matvecRows(D.self, FourInputRows.self, w, bias: bias, x, y, big: big, workspace: workspace)
        case 5: matvecRows(D.self, FiveInputRows.self, w, bias: bias, x, y, big: big, workspace: workspace)
        default: matvecRows(D.self, SixInputRows.self, w, bias: bias, x, y, big: big, workspace: workspace)
        }
        return
    }
    if rows <= matvecMaxRows {
        let groups = (out + 7) / 8
        parallelChunks(
            groups, minimumPerChunk: big ? 1 : groups, threads: workspace.workers,
            arguments: MatmulArguments(w, bias, x, rows, y, workspace)
        ) { raw, _, range in
            let (w, bias, x, rows, y) = raw.load(as: MatmulArguments.self).values
            let n = w.columns, out = w.rows
            for g in range {
                let j0 = 8 * g
                for t in 0..<rows {
                    let xt = x + t * n, yt = y + t * out
                    if j0 + 8 <= out {
                        let s = matvec8(D.self, w, j0, xt)
                        for r in 0..<8 { yt[j0 + r] = s[r] + (bias?[j0 + r] ?? 0) }
                    } else {
                        for j in j0..<out { yt[j] = matvec1(D.self, w.row(j), xt, n) + (bias?[j] ?? 0) }
                    }
                }
            }
        }
        return
    }
    if D.self == F32Rows.self && workspace.blockedSums && rows >= packedGemmMinimumRows && Kernels.packedGemm {
        packedGemm(
            rows: rows, columns: out, depth: n, a: AVX2.GemmOperand(base: x, rowStride: n, depthStride: 1),
            b: AVX2.GemmOperand(
                base: w.data.assumingMemoryBound(to: Float.self), rowStride: w.rowBytes / 4, depthStride: 1),
            panels: workspace.weightPanels?.panels(w, workspace: workspace), bias: bias, c: y, ldc: out, upper: false,
            workspace: workspace)
        return
    }
    precondition(workspace.floatsPerWorker >= matmulGroup * n, "workspace too small for \(n) columns")
    let groups = (out + 3) / 4
    parallelChunks(
        groups, minimumPerChunk: big ? 1 : groups, threads: workspace.workers,
        arguments: MatmulArguments(w, bias, x, rows, y, workspace)
    ) { raw, worker, range in
        let arguments = raw.load(as: MatmulArguments.self)
        let (w, bias, x, rows, y) = arguments.values
        let n = w.columns, out = w.rows
        let scratch = arguments.workspace.scratch(worker)
        // f32 weights (multiplied in place): the input rows in blocks of about 192 KiB, each block
        // against every weight group of the range, so that the block stays in L2 (one pass over all
        // the rows per group streamed them from L3 for every group). Other types decode each group
        // once, for all the rows. Each (input row, weight row) pair is one whole dot either way.
        let block = D.self == F32Rows.self ? max(3, f32RowBlockBytes / (4 * n) / 3 * 3) : rows
        for t0 in stride(from: 0, to: rows, by: block) {
            let t1 = min(rows, t0 + block)
            for g in range {
                let j0 = 4 * g, count = min(4, out - j0)
                // A: the group's weight rows as f32, row stride n.
                let a: UnsafePointer<Float>
                if D.self == F32Rows.self {
                    a = w.row(j0).assumingMemoryBound(to: Float.self)
                } else {
                    for r in 0..<count { D.decode(w.row(j0 + r), columns: n, into: scratch + r * n) }
                    a = UnsafePointer(scratch)
                }
                if count == 4 {
                    let bv = bias.map { SIMD4<Float>($0[j0], $0[j0 + 1], $0[j0 + 2], $0[j0 + 3]) } ?? SIMD4<Float>()
                    var t = t0
                    while t + 3 <= t1 {
                        tile4x3(a, n, x + t * n, n, n, y + t * out + j0, out, bias: bv)
                        t += 3
                    }
                    while t + 2 <= t1 {
                        tile4x2(a, n, x + t * n, n, n, y + t * out + j0, out, bias: bv)
                        t += 2
                    }
                    while t < t1 {
                        for r in 0..<4 { y[t * out + j0 + r] = dot(a + r * n, x + t * n, n) + bv[r] }
                        t += 1
                    }
                } else {
                    for r in 0..<count {
                        let b = bias?[j0 + r] ?? 0
                        for t in t0..<t1 { y[t * out + j0 + r] = dot(a + r * n, x + t * n, n) + b }
                    }
                }
            }
        }
    }
}

/// Stack room for the unit headers (RowDecoder.header, up to 16 floats) of a matvec's 8 weight rows.
struct UnitHeaders {
    private var storage = (
        SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
        SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>()
    )
    /// The 128 floats (valid while the value lives on the caller's stack and is not moved).
    var pointer: UnsafeMutablePointer<Float> {
        mutating get { withUnsafeMutableBytes(of: &storage) { $0.baseAddress!.assumingMemoryBound(to: Float.self) } }
    }
}

// s [8] = W rows j0 ..< j0+8 (stored, dequantized in registers) . x [n], each in dot()'s order.
@inline(__always)
private func matvec8<D: RowDecoder>(_: D.Type, _ w: WeightMatrix, _ j0: Int, _ x: UnsafePointer<Float>) -> SIMD8<Float>
{
    let n = w.columns, units = n / D.unitValues
    let p = w.row(j0), rb = w.rowBytes
    let xr = UnsafeRawPointer(x)
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
    // The next group's 8 rows (contiguous, 8·rb bytes) are prefetched a slice per unit.
    let next = p + 8 * rb, slice = 8 * D.unitBytes
    var headers = UnitHeaders()
    for u in 0..<units {
        if D.prefetchesRows { kronos_prefetch_slice(next, u, slice) }
        // The 8 rows take turns per part of a unit (D.part, D.partValues values at a time). Written
        // out twice: single-part types without the inner loop, because with it (one iteration) the
        // f16 specialization spilled an accumulator (hot f16 matvec 150 -> 68 GFLOP/s), and the
        // loop's body as a local function cost the q4_k one what the parts gained (45 -> 34).
        if D.partValues == D.unitValues {
            let xb = xr + 4 * u * D.unitValues
            @inline(__always) func xv(_ i: Int) -> SIMD8<Float> {
                xb.loadUnaligned(fromByteOffset: 32 * i, as: SIMD8<Float>.self)
            }
            D.unit(p, u) { i, v in a0.addProduct(v, xv(i)) }
            D.unit(p + rb, u) { i, v in a1.addProduct(v, xv(i)) }
            D.unit(p + 2 * rb, u) { i, v in a2.addProduct(v, xv(i)) }
            D.unit(p + 3 * rb, u) { i, v in a3.addProduct(v, xv(i)) }
            D.unit(p + 4 * rb, u) { i, v in a4.addProduct(v, xv(i)) }
            D.unit(p + 5 * rb, u) { i, v in a5.addProduct(v, xv(i)) }
            D.unit(p + 6 * rb, u) { i, v in a6.addProduct(v, xv(i)) }
            D.unit(p + 7 * rb, u) { i, v in a7.addProduct(v, xv(i)) }
        } else {
            // The 8 rows' unit headers, decoded once per unit (on the stack, 16 floats per row).
            let h = headers.pointer
            for r in 0..<8 { D.header(p + r * rb, u, into: h + 16 * r) }
            for j in 0..<(D.unitValues / D.partValues) {
                let xb = xr + 4 * (u * D.unitValues + j * D.partValues)
                @inline(__always) func xv(_ i: Int) -> SIMD8<Float> {
                    xb.loadUnaligned(fromByteOffset: 32 * i, as: SIMD8<Float>.self)
                }
                D.part(p, u, j, header: h) { i, v in a0.addProduct(v, xv(i)) }
                D.part(p + rb, u, j, header: h + 16) { i, v in a1.addProduct(v, xv(i)) }
                D.part(p + 2 * rb, u, j, header: h + 32) { i, v in a2.addProduct(v, xv(i)) }
                D.part(p + 3 * rb, u, j, header: h + 48) { i, v in a3.addProduct(v, xv(i)) }
                D.part(p + 4 * rb, u, j, header: h + 64) { i, v in a4.addProduct(v, xv(i)) }
                D.part(p + 5 * rb, u, j, header: h + 80) { i, v in a5.addProduct(v, xv(i)) }
                D.part(p + 6 * rb, u, j, header: h + 96) { i, v in a6.addProduct(v, xv(i)) }
                D.part(p + 7 * rb, u, j, header: h + 112) { i, v in a7.addProduct(v, xv(i)) }
            }
        }
    }
    var s = SIMD8<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum(), a4.sum(), a5.sum(), a6.sum(), a7.sum())
    for k in (units * D.unitValues)..<n {
        for r in 0..<8 { s[r] += D.value(p + r * rb, k) * x[k] }
    }
    return s
}

// Y [R, W.rows] = X [R, n] @ W^T (+ bias) for 2 <= R <= 6 input rows (a decode step of R samples),
// weight rows split across the cores in pairs. Each weight vector is dequantized once in registers
// and multiplies all R input rows (the batched path would store the decoded rows and reload them).
// Block types only: their rows are whole units (no tail).
@inline(__always)
private func matvecRows<D: RowDecoder, R: InputRowCount>(
    _: D.Type, _: R.Type, _ w: WeightMatrix, bias: UnsafePointer<Float>?,
    _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
    big: Bool, workspace: Workspace
) {
    precondition(w.columns % D.unitValues == 0, "matvecRows takes rows of whole \(D.self) units")
    let groups = (w.rows + 1) / 2
    parallelChunks(
        groups, minimumPerChunk: big ? 1 : groups, threads: workspace.workers,
        arguments: MatmulArguments(w, bias, x, R.count, y, workspace)
    ) { raw, _, range in
        let (w, bias, x, _, y) = raw.load(as: MatmulArguments.self).values
        let n = w.columns, out = w.rows
        for g in range {
            let j0 = 2 * g
            if j0 + 2 <= out {
                let (s0, s1) = matvec2xR(D.self, R.self, w, j0, x)
                let b0 = bias?[j0] ?? 0, b1 = bias?[j0 + 1] ?? 0
                for t in 0..<R.count { y[t * out + j0] = s0[t] + b0; y[t * out + j0 + 1] = s1[t] + b1 }
            } else {
                for t in 0..<R.count { y[t * out + j0] = matvec1(D.self, w.row(j0), x + t * n, n) + (bias?[j0] ?? 0) }
            }
        }
    }
}

// s0 [R], s1 [R] (lanes 0 ..< R) = W rows j0, j0+1 (stored as whole units, dequantized in registers)
// . x rows 0 ..< R ([R, n], row stride n), each pair in dot()'s order. 2R <= 12 accumulators; the
// input vectors are the fused multiply-adds' memory operands.
@inline(__always)
private func matvec2xR<D: RowDecoder, R: InputRowCount>(
    _: D.Type, _: R.Type, _ w: WeightMatrix, _ j0: Int,
    _ x: UnsafePointer<Float>
) -> (SIMD8<Float>, SIMD8<Float>) {
    let n = w.columns, units = n / D.unitValues
    let p = w.row(j0), rb = w.rowBytes
    let xr = UnsafeRawPointer(x), sx = 4 * n
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>(), a4 = SIMD8<Float>(),
        a5 = SIMD8<Float>()
    var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>(), b4 = SIMD8<Float>(),
        b5 = SIMD8<Float>()
    // The next pair of rows (contiguous, 2·rb bytes) is prefetched a slice per unit.
    let next = p + 2 * rb, slice = 2 * D.unitBytes
    var headers = UnitHeaders()
    for u in 0..<units {
        if D.prefetchesRows { kronos_prefetch_slice(next, u, slice) }
        let h = headers.pointer
        D.header(p, u, into: h); D.header(p + rb, u, into: h + 16)
        for j in 0..<(D.unitValues / D.partValues) {
            let xb = xr + 4 * (u * D.unitValues + j * D.partValues)
            @inline(__always) func xv(_ t: Int, _ i: Int) -> SIMD8<Float> {
                xb.loadUnaligned(fromByteOffset: t &* sx &+ 32 &* i, as: SIMD8<Float>.self)
            }
            D.part(p, u, j, header: h) { i, v in
                a0.addProduct(v, xv(0, i)); a1.addProduct(v, xv(1, i))
                if R.count > 2 { a2.addProduct(v, xv(2, i)) }
                if R.count > 3 { a3.addProduct(v, xv(3, i)) }
                if R.count > 4 { a4.addProduct(v, xv(4, i)) }
                if R.count > 5 { a5.addProduct(v, xv(5, i)) }
            }
            D.part(p + rb, u, j, header: h + 16) { i, v in
                b0.addProduct(v, xv(0, i)); b1.addProduct(v, xv(1, i))
                if R.count > 2 { b2.addProduct(v, xv(2, i)) }
                if R.count > 3 { b3.addProduct(v, xv(3, i)) }
                if R.count > 4 { b4.addProduct(v, xv(4, i)) }
                if R.count > 5 { b5.addProduct(v, xv(5, i)) }
            }
        }
    }
    return (
        SIMD8<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum(), a4.sum(), a5.sum(), 0, 0),
        SIMD8<Float>(b0.sum(), b1.sum(), b2.sum(), b3.sum(), b4.sum(), b5.sum(), 0, 0)
    )
}

// stored row [n] (dequantized in registers) . x [n] -> scalar, in dot()'s order.
@inline(__always)
private func matvec1<D: RowDecoder>(_: D.Type, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let units = n / D.unitValues
    let xr = UnsafeRawPointer(x)
    var acc = SIMD8<Float>()
    for u in 0..<units {
        let xb = xr + 4 * u * D.unitValues
        D.unit(row, u) { i, v in acc.addProduct(v, xb.loadUnaligned(fromByteOffset: 32 * i, as: SIMD8<Float>.self)) }
    }
    var s = acc.sum()
    for k in (units * D.unitValues)..<n { s += D.value(row, k) * x[k] }
    return s
}

// x [rows, n] -> x / sqrt(mean(x^2) + eps) * weight [n], into y (may alias x)
func rmsNorm(
    _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, n: Int, _ y: UnsafeMutablePointer<Float>,
    eps: Float = 1e-5
) {
    for t in 0..<rows {
        let xr = x + t * n, yr = y + t * n
        let ms = dot(xr, xr, n) / Float(n)
        let r = 1 / (ms + eps).squareRoot()
        for i in 0..<n { yr[i] = xr[i] * r * weight[i] }
    }
}

// e^x [8 lanes], relative error below 1 ulp (max 6.8e-8 against Double exp, KernelTests): x clamped to
// [-87, 88]; x = n·ln 2 + r with n = round(x / ln 2) and r reduced in two steps (ln 2 split into a
// short high part and the rest), |r| <= ln 2 / 2; e^r by its degree-7 Taylor polynomial (truncation
// below 1e-8 relative), Horner with fused multiply-adds; 2^n built in the exponent bits.
// A pure function of each lane, so every path that uses it gets the same bits for the same input.
@inline(__always)
func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let xc = kronos_clamp8f(x, SIMD8(repeating: -87), SIMD8(repeating: 88))
    // n = round(x / ln 2): adding 1.5·2^23 leaves it (ties to even) in the low mantissa bits of t.
    let magic = SIMD8<Float>(repeating: 12582912)
    let t = xc * 1.44269504088896341 + magic
    let n = t - magic
    var r = xc.addingProduct(-n, SIMD8(repeating: 0.693359375))
    r = r.addingProduct(-n, SIMD8(repeating: -2.12194440e-4))
    var p = SIMD8<Float>(repeating: 1 / 5040)
    p = SIMD8(repeating: 1 / 720).addingProduct(p, r)
    p = SIMD8(repeating: 1 / 120).addingProduct(p, r)
    p = SIMD8(repeating: 1 / 24).addingProduct(p, r)
    p = SIMD8(repeating: 1 / 6).addingProduct(p, r)
    p = SIMD8(repeating: 0.5).addingProduct(p, r)
    p = SIMD8(repeating: 1).addingProduct(p, r)
    p = SIMD8(repeating: 1).addingProduct(p, r)
    let twoN = unsafeBitCast(
        (unsafeBitCast(t, to: SIMD8<Int32>.self) &+ (127 - 0x4B40_0000)) &<< 23, to: SIMD8<Float>.self)
    return p * twoN
}

// Loads / stores count (< 8) floats as lanes 0 ..< count of a vector (the other lanes 0).
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    for i in 0..<count { v[i] = p[i] }
    return v
}
@inline(__always) func storePartial(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

// g [n] = silu(g) * u [n], silu(a) = a / (1 + e^-a), 8 values at a time (exp8).
func siluGate(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
    @inline(__always) func gate(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a / (1 + exp8(-a)) * b }
    let rg = UnsafeMutableRawPointer(g), ru = UnsafeRawPointer(u)
    var i = 0
    while i + 8 <= n {
        let a = rg.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self),
            b = ru.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        rg.storeBytes(of: gate(a, b), toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    if i < n { storePartial(gate(loadPartial(g + i, n - i), loadPartial(u + i, n - i)), g + i, n - i) }
}

// v [n] -> softmax(v) in place: e^(v - max) by exp8, summed 8 lanes at a time (then the lanes, then
// the partial tail vector), scaled by 1 / sum. The order depends only on n.
func softmaxInPlace(_ v: UnsafeMutablePointer<Float>, _ n: Int) {
    let m = kronos_max_f32(v, n)
    let mv = SIMD8<Float>(repeating: m), raw = UnsafeMutableRawPointer(v)
    var acc = SIMD8<Float>(), i = 0
    while i + 8 <= n {
        let e = exp8(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) - mv)
        raw.storeBytes(of: e, toByteOffset: 4 * i, as: SIMD8<Float>.self)
        acc += e
        i += 8
    }
    var s = acc.sum()
    if i < n {
        let e = exp8(loadPartial(v + i, n - i) - mv)
        storePartial(e, v + i, n - i)
        for j in 0..<(n - i) { s += e[j] }
    }
    let inv = 1 / s
    for i in 0..<n { v[i] *= inv }
}

/// cos / sin of position p times inv_freq [half] for rotate-half rotary, for positions
/// 0 ..< `positions`, computed once at load and never written again: one table serves every
/// forecast on the model at once. Rows past it are computed per pass into the pass's own scratch
/// (`BlockScratch.rotaryRows`) by the same formula, so they are the same numbers bit for bit.
final class RotaryTable: @unchecked Sendable {  // (immutable after init: the pointers are written only there)
    let invFreq: [Float]
    var half: Int { invFreq.count }
    let positions: Int
    private let cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>  // [positions, half]

    init(invFreq: [Float], positions: Int) {
        self.invFreq = invFreq
        self.positions = positions
        cos = arena.buffer(count: positions * invFreq.count)
        sin = arena.buffer(count: positions * invFreq.count)
        Self.angles(invFreq, positions: 0..<positions, cos: cos, sin: sin)
    }
    private let arena = ScratchArena()  // owns cos and sin

    /// cos / sin of the positions `range` -> cos, sin [range.count, half].
    static func angles(
        _ invFreq: [Float], positions range: Range<Int>, cos c: UnsafeMutablePointer<Float>,
        sin s: UnsafeMutablePointer<Float>
    ) {
        let half = invFreq.count
        for (i, p) in range.enumerated() {
            for j in 0..<half {
                // theta in f32 as the reference computes it (position × inv_freq), then cos / sin.
                let theta = Float(p) * invFreq[j]
                c[i * half + j] = Float(Foundation.cos(Double(theta)))
                s[i * half + j] = Float(Foundation.sin(Double(theta)))
            }
        }
    }

    /// The table's rows from position `start` (start + count <= positions): cos, sin [count, half].
    func rows(from start: Int) -> (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        (UnsafePointer(cos + start * half), UnsafePointer(sin + start * half))
    }

    // v [2*half] rotated in place by one position's cos / sin [half]:
    // out[j] = v[j] cos - v[j+half] sin; out[j+half] = v[j+half] cos + v[j] sin
    @inline(__always)
    static func apply(
        _ v: UnsafeMutablePointer<Float>, half: Int, cos cp: UnsafePointer<Float>, sin sp: UnsafePointer<Float>
    ) {
        for j in 0..<half {
            let a = v[j], b = v[j + half]
            v[j] = a * cp[j] - b * sp[j]
            v[j + half] = b * cp[j] + a * sp[j]
        }
    }
}

// The free kernels under other names, for the `Kernels` entry points whose own names hide them
// (the engine is compiled as two modules, so a module-qualified name cannot be used).
@inline(__always) private func matmulKernel(
    _ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int,
    _ y: UnsafeMutablePointer<Float>, workspace: Workspace
) {
    matmul(w, bias: bias, x, rows: rows, y, workspace: workspace)
}
@inline(__always) private func siluGateKernel(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
    siluGate(g, u, n)
}
@inline(__always) private func quantizeActivationsKernel(
    _ x: UnsafePointer<Float>, _ n: Int, codes q: UnsafeMutablePointer<Int8>,
    d: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Int32>
) {
    quantizeActivations(x, n, codes: q, d: d, sums: sums)
}

/// Public entry points to the kernels, for their tests and benchmarks.
public enum Kernels {
    /// Y [rows, W.rows] = X [rows, W.columns] @ W^T (+ bias), through the path the runtime takes for
    /// this many rows (in-register matvecs for rows <= 3, <= 6 for block types; batched tiles above).
    /// With `integerActivations`, q8_0 / q4_1 / q4_k weights take the integer path (activations
    /// quantized per block).
    /// `integerKernels` chooses which of the integer path's kernels compute it; `packedWeights`: with
    /// blockedSums, the weights packed once beforehand (WeightPanels, as calibration's model keeps them).
    public static func matmul(
        _ w: WeightMatrix, bias: [Float]? = nil, _ x: [Float], rows: Int, integerActivations: Bool = false,
        integerKernels: IntegerKernels = .native, blockedSums: Bool = false, packedWeights: Bool = false,
        threads: Int = Runtime.defaultThreads
    ) -> [Float] {
        precondition(x.count == rows * w.columns && integerKernels.runs)
        let workspace = Workspace(columns: w.columns, positions: 0, threads: Runtime.startThreads(threads))
        workspace.integerActivations = integerActivations
        workspace.blockedSums = blockedSums
        workspace.weightPanels = packedWeights ? WeightPanels() : nil
        workspace.integerKernels = integerKernels
        var y = [Float](repeating: .nan, count: rows * w.rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                if let bias {
                    bias.withUnsafeBufferPointer {
                        matmulKernel(
                            w, bias: $0.baseAddress!, xp.baseAddress!, rows: rows, yp.baseAddress!, workspace: workspace
                        )
                    }
                } else {
                    matmulKernel(w, bias: nil, xp.baseAddress!, rows: rows, yp.baseAddress!, workspace: workspace)
                }
            }
        }
        return y
    }

    /// e^x of every value as the kernels compute it (exp8, 8 lanes at a time).
    public static func exp(_ x: [Float]) -> [Float] {
        x.map { exp8(SIMD8(repeating: $0))[0] }
    }

    /// softmax(v) as attention computes it (softmaxInPlace).
    public static func softmax(_ v: [Float]) -> [Float] {
        var r = v
        r.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, v.count) }
        return r
    }

    /// silu(g) · u elementwise as the feed-forward blocks compute it (siluGate).
    public static func siluGate(_ g: [Float], _ u: [Float]) -> [Float] {
        precondition(g.count == u.count)
        var r = g
        r.withUnsafeMutableBufferPointer { rp in
            u.withUnsafeBufferPointer { siluGateKernel(rp.baseAddress!, $0.baseAddress!, g.count) }
        }
        return r
    }

    /// x [n] (n a multiple of 32) quantized as the integer path does: codes [n] in -127...127,
    /// scales d [n / 32] and the sum of each block's codes [n / 32].
    public static func quantizeActivations(_ x: [Float]) -> (q: [Int8], d: [Float], sums: [Int32]) {
        precondition(x.count % activationBlock == 0)
        var q = [Int8](repeating: 0, count: x.count), d = [Float](repeating: .nan, count: x.count / activationBlock)
        var sums = [Int32](repeating: .min, count: x.count / activationBlock)
        x.withUnsafeBufferPointer { xp in
            q.withUnsafeMutableBufferPointer { qp in
                d.withUnsafeMutableBufferPointer { dp in
                    sums.withUnsafeMutableBufferPointer {
                        quantizeActivationsKernel(
                            xp.baseAddress!, x.count, codes: qp.baseAddress!, d: dp.baseAddress!, sums: $0.baseAddress!)
                    }
                }
            }
        }
        return (q, d, sums)
    }

    /// The kernels of the integer path (IntegerActivations.swift): the scalar reference, the
    /// portable SIMD kernel, and the AVX-512 VNNI kernels (only where `native` is `.vnni`).
    /// Whether a prefill's attention transposes the keys once per (sequence, head) and runs the
    /// key-lane kernels (attendWide): the 512-bit ones (AVX512, KronosWideVNNI) on processors with
    /// AVX-512 VNNI (and so AVX-512 F), the 256-bit ones (KronosWideAVX2) on other x86-64-v3 ones, unless
    /// KRONOS_KERNELS=portable (KRONOS_KERNELS=avx2 takes the 256-bit ones on an AVX-512 processor).
    /// The same numbers as the narrow path's (attendRows), bit for bit.
    public static let wideAttention = IntegerKernels.native == .vnni || IntegerKernels.native == .avx2
    /// Whether attendWide takes the 512-bit kernels (else the 256-bit ones) by default.
    package static let wideAttention512 = IntegerKernels.native == .vnni
    /// New rows per sequence from which a pass takes them: below, transposing the keys costs more
    /// than it saves.
    static let wideAttentionMinimumRows = 16

    public enum IntegerKernels: Sendable {
        case reference, portable, avx2, vnni
        /// The fastest this processor runs (cpuid, checked once): `.vnni` with AVX-512 F / BW / VL +
        /// VNNI, `.avx2` with x86-64-v3 (KronosWideAVX2), else `.portable`. KRONOS_KERNELS=portable
        /// chooses `.portable` (Processor.portableForced), KRONOS_KERNELS=avx2 `.avx2` on a VNNI
        /// processor (Processor.avx2Forced).
        public static let native: IntegerKernels = {
            if Processor.portableForced { return .portable }
            #if arch(x86_64)
                if Processor.hasAVX512VNNI && !Processor.avx2Forced { return .vnni }
                if Processor.hasX86_64_v3 { return .avx2 }
            #endif
            return .portable
        }()

        /// Whether these kernels are faster than the float path (measured: VNNI on Zen 4 / 5, AVX2 on
        /// Zen 3), which makes int8 activations the default where they are native.
        public var outpaceFloat: Bool { self == .vnni || self == .avx2 }

        /// Whether this processor runs these kernels.
        public var runs: Bool {
            switch self {
            case .reference, .portable: true
            case .avx2: Processor.hasX86_64_v3
            case .vnni: Processor.hasAVX512VNNI
            }
        }
    }

    /// Row r of W decoded by the in-register decoder (RowDecoder) into floats.
    public static func decodeRow(_ w: WeightMatrix, _ r: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: w.columns) { b, n in
            w.type.withRowDecoder(DecodeRowTask(row: w.row(r), columns: w.columns, out: b.baseAddress!))
            n = w.columns
        }
    }

    /// Causal self-attention of one sequence: q, k, v [rows, heads·hd] (rotary already applied)
    /// -> out [rows, heads·hd], row t attending to rows 0...t, computed the way a prefill does
    /// (blocks of attentionQueryBlock queries) when `blocked`, else one query at a time as decode steps do.
    /// Keys and values are cached in `precision`.
    public static func causalAttention(
        q: [Float], k: [Float], v: [Float], rows: Int, heads: Int, headDimension hd: Int,
        blocked: Bool, precision: KVCachePrecision = .f32
    ) -> [Float] {
        let D = heads * hd
        precondition(q.count == rows * D && k.count == rows * D && v.count == rows * D)
        let cache = KVCache(batch: 1, capacity: rows, width: D, precision: precision)
        k.withUnsafeBufferPointer { kp in
            v.withUnsafeBufferPointer { vp in
                for t in 0..<rows {
                    cache.store(0, position: t, key: kp.baseAddress! + t * D, value: vp.baseAddress! + t * D)
                }
            }
        }
        cache.length = rows
        let arena = ScratchArena()
        defer { withExtendedLifetime(arena) {} }
        let scores: UnsafeMutablePointer<Float> = arena.buffer(count: attentionQueryBlock * rows)
        var out = [Float](repeating: .nan, count: rows * D)
        let scale = 1 / Float(hd).squareRoot()
        q.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                for h in 0..<heads {
                    var t = 0
                    while t < rows {
                        let qb = blocked ? min(attentionQueryBlock, rows - t) : 1
                        cache.attend(
                            sequence: 0, column: h * hd, headDimension: hd, visible: t + 1, queries: qb,
                            q: qp.baseAddress! + t * D + h * hd, qStride: D, scale: scale, scores: scores,
                            out: op.baseAddress! + t * D + h * hd, outStride: D)
                        t += qb
                    }
                }
            }
        }
        return out
    }
}
