// The packed f32 GEMM of calibration's passes (KronosWideEngine/PackedGemm.swift calls it, one range
// of columns per core), in the loop order of BLIS / OpenBLAS: blocks of the depth (gemmDepthBlock)
// over which a block of B's columns is packed into 16-column panels (L3) and a block of A's rows into
// 6-row panels (L2), then the 6 x 16 register tile (CKronosHints, kronos_gemm6x16_avx2) over every
// panel pair, B's panel staying in L1 across A's. Every element is its start (bias or 0) plus its
// products by fused multiply-add in depth order, whatever the blocks and the cores: not dot()'s order
// (eight lanes, then their sum), so not the decode steps' bits; for passes that only need the f32
// values (calibration's statistics). Hand-written rather than a BLAS: the engine links none, and
// Debian's OpenBLAS 0.3.21 (cblas_sgemm, 2 threads, on these shapes at 512 rows) measured 82-85 % of
// the f32 peak on Zen 3 against this kernel's 87-92 % (kronos-bench kernels, "f32 packed").
import CKronosHints

extension AVX2 {
    /// Element (i, p) of a GEMM operand: base[i · rowStride + p · depthStride].
    public struct GemmOperand: @unchecked Sendable {
        public let base: UnsafePointer<Float>
        public let rowStride: Int
        public let depthStride: Int
        public init(base: UnsafePointer<Float>, rowStride: Int, depthStride: Int) {
            self.base = base; self.rowStride = rowStride; self.depthStride = depthStride
        }
    }

    /// Depth of a packed block at most: a B panel (16 x 416 floats, 26 KiB) stays in L1. A depth is
    /// split into equal blocks (multiples of 8) of at most this: kronos-bench kernels at 512 rows,
    /// [2048,832] 179 -> 187 GFLOP/s against blocks of 256 (the last one 64 deep), others unchanged
    /// (blocks of at most 384 or 512 within 1 % of it).
    public static let gemmDepthBlock = 416
    /// Rows of A packed at a time (144 x 416 floats, 234 KiB: in L2; 72 and 216 rows within 1 %).
    public static let gemmRowBlock = 144
    /// Columns of B packed at a time (2048 x 416 floats, 3.3 MiB: in L3).
    public static let gemmColumnBlock = 2048

    /// Floats of scratch gemm needs (64-byte aligned): the A block (and 16 floats of room past it, for
    /// kronos_pack6_avx2), the B block, a zero row and an edge tile.
    public static let gemmScratchFloats =
        gemmRowBlock * gemmDepthBlock + 16 + gemmDepthBlock * gemmColumnBlock + gemmDepthBlock + 6 * 16

    /// Floats of B's panels over the whole depth (packPanels): ⌈columns / 16⌉ panels [depth][16].
    public static func panelFloats(columns n: Int, depth k: Int) -> Int { (n + 15) / 16 * 16 * k }

    /// B [columns, depth] -> its 16-column panels over the whole depth, the layout gemm packs B into
    /// block by block: panel t [depth][16] at into + 16 · t · depth holds columns 16t ..< 16t + 16 (past
    /// the last column, zeros). Only the panels of `columns` (whose start is a multiple of 16) are
    /// written, so that the cores can share the work. zeros: `depth` floats of 0.
    public static func packPanels(
        _ b: GemmOperand, columns: Range<Int>, depth k: Int, count n: Int, into: UnsafeMutablePointer<Float>,
        zeros: UnsafePointer<Float>
    ) {
        precondition(columns.lowerBound % 16 == 0 && columns.upperBound <= n)
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer?.self, capacity: 16) { rowPointers in
            for j0 in stride(from: columns.lowerBound, to: columns.upperBound, by: 16) {
                packPanel(
                    b, first: j0, count: min(16, n - j0), width: 16, depth: 0..<k, into: into + j0 * k, zeros: zeros,
                    rowPointers: rowPointers.baseAddress!)
            }
        }
    }

    // C [rows, columns] (row stride ldc, columns of the given range only) = A [rows, depth] . B [columns, depth]ᵀ
    // (+ bias [column]). upper: only the elements with row ≤ column are needed (a Gram matrix, A and
    // B the same operand): the tiles wholly below the diagonal are skipped; those across it write
    // some elements below it too. panels: B already in panels over the whole depth (packPanels, 32-byte
    // aligned), read in place instead of packed block by block (b is then not read). accumulate: C's
    // elements start from their values instead of the bias or 0 (C += A . Bᵀ; no bias), so that
    // products over rows split across calls sum as one call over all of them would, bit for bit.
    @inline(never)
    public static func gemm(
        rows m: Int, columns: Range<Int>, depth k: Int, a: GemmOperand, b: GemmOperand,
        panels: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>?, c: UnsafeMutablePointer<Float>, ldc: Int,
        upper: Bool, accumulate: Bool = false,
        scratch: UnsafeMutablePointer<Float>
    ) {
        precondition(!accumulate || bias == nil, "an accumulating GEMM takes no bias")
        let kcMax = gemmDepthBlock, mcMax = gemmRowBlock, ncMax = gemmColumnBlock
        let depthBlocks = (k + kcMax - 1) / kcMax
        let kcStep = ((k + depthBlocks - 1) / depthBlocks + 7) / 8 * 8  // ≤ kcMax, a multiple of 8
        let packA = scratch  // [mc / 6 panels][kc][6]
        let packB = packA + mcMax * kcMax + 16  // [nc / 16 panels][kc][16], 64-byte aligned
        let zeros = packB + kcMax * ncMax  // [kcMax]: the rows past B's last column
        let edge = zeros + kcMax  // [6, 16]: a tile past A's last row or B's last column
        zeros.update(repeating: 0, count: kcMax)
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer?.self, capacity: 16) { rowPointers in
            for jc in stride(from: columns.lowerBound, to: columns.upperBound, by: ncMax) {
                let nc = min(ncMax, columns.upperBound - jc)
                let rowEnd = upper ? min(m, jc + nc) : m  // (upper: no row past the block's last column)
                guard rowEnd > 0 else { continue }
                for pc in stride(from: 0, to: k, by: kcStep) {
                    let kc = min(kcStep, k - pc)
                    for t in 0..<(nc + 15) / 16 where panels == nil {
                        let j0 = jc + 16 * t, count = min(16, jc + nc - j0)
                        packPanel(
                            b, first: j0, count: count, width: 16, depth: pc..<(pc + kc), into: packB + 16 * t * kc,
                            zeros: zeros, rowPointers: rowPointers.baseAddress!)
                    }
                    for ic in stride(from: 0, to: rowEnd, by: mcMax) {
                        let mc = min(mcMax, rowEnd - ic)
                        for t in 0..<(mc + 5) / 6 {
                            let i0 = ic + 6 * t
                            packPanel(
                                a, first: i0, count: min(6, ic + mc - i0), width: 6, depth: pc..<(pc + kc),
                                into: packA + 6 * t * kc, zeros: zeros, rowPointers: rowPointers.baseAddress!)
                        }
                        for jr in stride(from: 0, to: nc, by: 16) {
                            let j0 = jc + jr, nr = min(16, nc - jr)
                            let bp = panels.map { $0 + j0 * k + 16 * pc } ?? UnsafePointer(packB + jr * kc)
                            for ir in stride(from: 0, to: mc, by: 6) {
                                let i0 = ic + ir, mr = min(6, mc - ir), ap = packA + ir * kc
                                if upper && i0 > j0 + nr - 1 { continue }  // every row below every column
                                let carry = pc > 0 || accumulate  // (C holds the sums so far)
                                if mr == 6 && nr == 16 {
                                    kronos_gemm6x16_avx2(
                                        kc, ap, bp, c + i0 * ldc + j0, ldc, carry ? nil : bias.map { $0 + j0 },
                                        carry ? 1 : 0)
                                } else {
                                    for i in 0..<6 {
                                        for j in 0..<16 {
                                            edge[16 * i + j] =
                                                i >= mr || j >= nr
                                                ? 0 : carry ? c[(i0 + i) * ldc + j0 + j] : bias?[j0 + j] ?? 0
                                        }
                                    }
                                    kronos_gemm6x16_avx2(kc, ap, bp, edge, 16, nil, 1)
                                    for i in 0..<mr {
                                        (c + (i0 + i) * ldc + j0).update(from: edge + 16 * i, count: nr)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs `count` (≤ width) rows of an operand from row `first` over `depth` into a panel [depth][width]
    /// (rows past `count` zero). Depth-contiguous operands (the weights, the input rows) go through
    /// 8 x 8 transposes (kronos_transpose16_avx2, kronos_pack6_avx2); row-contiguous ones (a Gram's
    /// transposed rows) are copied a depth at a time (kronos_pack_columns_avx2). In C: with these loops in
    /// Swift the GEMM ran at 84-86 % of the f32 peak at 512 rows, with these at 87-92 %.
    @inline(__always)
    private static func packPanel(
        _ o: GemmOperand, first: Int, count: Int, width: Int, depth: Range<Int>,
        into panel: UnsafeMutablePointer<Float>,
        zeros: UnsafePointer<Float>, rowPointers: UnsafeMutablePointer<UnsafeRawPointer?>
    ) {
        let kc = depth.count
        if o.depthStride == 1 {
            for i in 0..<width {
                rowPointers[i] = UnsafeRawPointer(
                    i < count ? o.base + (first + i) * o.rowStride + depth.lowerBound : zeros)
            }
            if width == 16 {
                kronos_transpose16_avx2(rowPointers, 0, kc, panel, 16)
            } else {
                rowPointers.withMemoryRebound(to: UnsafePointer<Float>?.self, capacity: 16) {
                    kronos_pack6_avx2($0, kc, panel)
                }
            }
        } else if o.rowStride == 1 {
            kronos_pack_columns_avx2(
                o.base + depth.lowerBound * o.depthStride + first, o.depthStride, kc, Int32(width), Int32(count), panel)
        } else {
            for i in 0..<width {
                if i < count {
                    let source = o.base + (first + i) * o.rowStride + depth.lowerBound * o.depthStride
                    for p in 0..<kc { panel[p * width + i] = source[p * o.depthStride] }
                } else {
                    for p in 0..<kc { panel[p * width + i] = 0 }
                }
            }
        }
    }
}
