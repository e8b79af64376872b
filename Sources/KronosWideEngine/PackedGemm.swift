// The packed f32 GEMM (KronosWideAVX2, AVX2.gemm) for passes that need the f32 values but not the
// decode steps' bits: calibration's forward passes (Workspace.blockedSums) and Gram matrices. Each
// element is its start plus its products in depth order, whichever core computes it, so the results
// do not depend on the thread count.
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

// C [m, n] (row stride ldc) = A [m, k] . B [n, k]ᵀ (+ bias [n]), the columns split across the
// workspace's workers (upper: the Gram's upper triangle, the split balanced by its area).
func packedGemm(
    rows m: Int, columns n: Int, depth k: Int, a: AVX2.GemmOperand, b: AVX2.GemmOperand, bias: UnsafePointer<Float>?,
    c: UnsafeMutablePointer<Float>, ldc: Int, upper: Bool, workspace: Workspace
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
                rows: m, columns: columns, depth: k, a: a, b: b, bias: bias, c: c, ldc: ldc, upper: upper,
                scratch: scratch + worker * AVX2.gemmScratchFloats)
        }
    }
}
