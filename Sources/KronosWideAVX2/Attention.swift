// The causal attention of a prefill in 256-bit registers, for x86-64-v3 processors without AVX-512:
// KronosWideVNNI's AVX512.scores / transpose / values, with their contracts on the same transposed keys
// (blocks of 16, here 32-byte aligned), in AVX2 + FMA (CKronosHints: kronos_scores16_avx2,
// kronos_transpose16_avx2, kronos_values_avx2). Every score and output is computed in the order of the
// engine's attendRows: the same bits as the narrow path's and as the 512-bit kernels'.
import CKronosHints

extension AVX2 {
    /// AVX512.scores: queries (1...2) rows of q against the keys of kt in blocks of 16 -> out [queries, ld].
    @inline(never)
    public static func scores(
        queries: Int, q: UnsafePointer<Float>, qStride: Int, headDimension hd: Int, kt: UnsafePointer<Float>,
        keys n: Int, scale: Float, out: UnsafeMutablePointer<Float>, ld: Int
    ) {
        precondition((1...2).contains(queries) && ld >= (n + 15) / 16 * 16)
        for p in stride(from: 0, to: n, by: 16) {
            // (a constant R for each call, so that the kernel unrolls for it)
            if queries == 1 {
                kronos_scores16_avx2(1, q, qStride, hd, kt + p * hd, 16, scale, out + p, ld)
            } else {
                kronos_scores16_avx2(2, q, qStride, hd, kt + p * hd, 16, scale, out + p, ld)
            }
        }
    }

    /// AVX512.transpose: 16 key rows (f32, or f16 when `half`) -> one block of kt.
    @inline(never)
    public static func transpose(
        rows: UnsafePointer<UnsafeRawPointer?>, half: Bool, headDimension hd: Int, kt: UnsafeMutablePointer<Float>
    ) {
        kronos_transpose16_avx2(rows, half ? 1 : 0, hd, kt, 16)
    }

    /// AVX512.values: out_i [hd] = Σ_p w_i[p] · v_p for p < visible + i, fused, in p order (queries 1...4).
    @inline(never)
    public static func values(
        queries: Int, w: UnsafePointer<Float>, ld: Int, visible: Int, v: UnsafePointer<Float>, ldv: Int,
        headDimension hd: Int, out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        precondition((1...4).contains(queries))
        switch queries {
        case 1: kronos_values_avx2(1, w, ld, visible, v, ldv, hd, out, outStride)
        case 2: kronos_values_avx2(2, w, ld, visible, v, ldv, hd, out, outStride)
        case 3: kronos_values_avx2(3, w, ld, visible, v, ldv, hd, out, outStride)
        default: kronos_values_avx2(4, w, ld, visible, v, ldv, hd, out, outStride)
        }
    }
}
