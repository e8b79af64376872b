// The packed f32 GEMM (KronosWideAVX2, AVX2.gemm) for passes that need the f32 values but not the
// decode steps' bits: calibration's forward passes (Workspace.blockedSums) and Gram matrices. Each
// element is its start plus its products in depth order, whichever core computes it, so the results
// do not depend on the thread count.
import Foundation
import KronosBundle
import KronosWideAVX2

extension Kernels {
    /// Whether the packed GEMM runs here: x86-64-v3 processors, unless KRONOS_KERNELS=portable.
    public static let packedGemm = IntegerKernels.native == .avx2 || IntegerKernels.native == .vnni
}

/// Input rows from which a blocked-sums matmul takes the packed GEMM; fewer take the other paths
/// (kronos-bench kernels, base shapes: at 16 and 32 rows the packed GEMM is 9-15 % slower, since it
/// transposes every weight for a few rows; at 64, 9-14 % faster).
let packedGemmMinimumRows = 48

/// Rows of a tokenizer or predictor pass with blockedSums (calibration): a whole window of
/// Kronos-small / base at once, since the packed GEMM transposes the weights at every call
/// (kronos-bench kernels, f32 packed: 76-79 % of the f32 peak at 128 rows, 84-86 % at 512).
let blockedPassRows = 512

extension Workspace {
    /// Each worker's scratch for AVX2.gemm, allocated at the first packed GEMM.
    func gemmScratch() -> UnsafeMutablePointer<Float> {
        if let gemmScratchBase { return gemmScratchBase }
        let base = arenaBuffer(count: workers * AVX2.gemmScratchFloats)
        gemmScratchBase = base
        return base
    }
}

/// A model's f32 weights in the packed GEMM's 16-column panels (AVX2.packPanels), each packed at its
/// first blocked-sums matmul and kept until `removeAll` (the model's blockedSums turned off).
/// Calibration multiplies the same weights in every window: packed once, a window's GEMMs read them in
/// place instead of transposing every weight again (the weights come from DRAM once a window either
/// way). Costs a second copy of the f32 weights while it lasts (+400 MB on Kronos-base).
final class WeightPanels: @unchecked Sendable {
    private let lock = NSLock()
    private var packed = [UnsafeRawPointer: AlignedBuffer]()  // by the weight's data

    /// w's panels [⌈rows / 16⌉][columns][16], packed on the workspace's workers the first time.
    func panels(_ w: WeightMatrix, workspace: Workspace) -> UnsafePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        if let p = packed[w.data] { return UnsafePointer(p.bytes.baseAddress!.assumingMemoryBound(to: Float.self)) }
        let n = w.rows, k = w.columns
        let buffer = AlignedBuffer(  // (all written below)
            byteCount: 4 * AVX2.panelFloats(columns: n, depth: k), zeroed: false, hugePages: true)
        let out = buffer.bytes.baseAddress!.assumingMemoryBound(to: Float.self)
        let b = AVX2.GemmOperand(
            base: w.data.assumingMemoryBound(to: Float.self), rowStride: w.rowBytes / 4, depthStride: 1)
        let zeros = [Float](repeating: 0, count: k)
        zeros.withUnsafeBufferPointer { z in
            let zp = z.baseAddress!
            parallelChunks((n + 15) / 16, threads: workspace.workers) { _, range in
                AVX2.packPanels(
                    b, columns: (16 * range.lowerBound)..<min(n, 16 * range.upperBound), depth: k, count: n,
                    into: out, zeros: zp)
            }
        }
        packed[w.data] = buffer
        return UnsafePointer(out)
    }

    func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        packed.removeAll()
    }
}

// C [m, n] (row stride ldc) = A [m, k] . B [n, k]ᵀ (+ bias [n]), the columns split across the
// workspace's workers (upper: the Gram's upper triangle, the split balanced by its area). panels: B
// already in panels (WeightPanels), read in place. accumulate: C += A . Bᵀ (AVX2.gemm).
func packedGemm(
    rows m: Int, columns n: Int, depth k: Int, a: AVX2.GemmOperand, b: AVX2.GemmOperand,
    panels: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>?, c: UnsafeMutablePointer<Float>, ldc: Int,
    upper: Bool, accumulate: Bool = false, workspace: Workspace
) {
    precondition(Kernels.packedGemm, "the packed GEMM needs an x86-64-v3 processor")
    guard m > 0 && n > 0 else { return }
    let scratch = workspace.gemmScratch()
    // At least 64 columns a core (below that, waking a second one costs more than it saves).
    let workers = max(1, min(workspace.workers, n / 64))
    // Worker w's columns end at bound(w + 1), a multiple of 16: in proportion to w (or, for a
    // triangle, to the square root of w, so that each holds as many elements).
    func bound(_ w: Int) -> Int {
        if w >= workers { return n }
        let share = upper ? (Double(w) / Double(workers)).squareRoot() : Double(w) / Double(workers)
        return min(n, Int((Double(n) * share / 16).rounded()) * 16)
    }
    parallelChunks(workers, threads: workers) { worker, range in
        for w in range {
            let columns = bound(w)..<bound(w + 1)
            if columns.isEmpty { continue }
            AVX2.gemm(
                rows: m, columns: columns, depth: k, a: a, b: b, panels: panels, bias: bias, c: c, ldc: ldc,
                upper: upper, accumulate: accumulate,
                scratch: scratch + worker * AVX2.gemmScratchFloats)
        }
    }
}
