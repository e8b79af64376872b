// The causal attention of a prefill in 512-bit registers, for processors with AVX-512 (every one with
// VNNI, which is what the engine checks before calling these): scores with keys in the lanes (from
// keys transposed by the caller) and weighted values with columns in the lanes. Each score and each
// output is computed in the order of the engine's attendRows, so the results are the same bits as the
// 256-bit path's and a cached decode step still equals a recomputed window (CKronosHints,
// kronos_scores16 / kronos_values).
import CKronosHints

public enum AVX512 {
    /// scores [queries, ld]: row i = (q_i · k_p) · scale for keys p < keys (and up to the next multiple
    /// of 16: those lanes hold scores of padding keys). q: queries (1...2) rows of hd floats, qStride
    /// apart; kt: the keys in blocks of 16 (`transpose`): key 16b + l's dimension d at
    /// kt[16·hd·b + 16·d + l], 64-byte aligned, padding keys finite. (A block's hd rows of 16 lie
    /// together: transposed with a stride of all the keys, the rows of a block fell into the same few
    /// L1 sets and were read from L2 at every query.)
    @inline(never)
    public static func scores(
        queries: Int, q: UnsafePointer<Float>, qStride: Int, headDimension hd: Int, kt: UnsafePointer<Float>,
        keys n: Int, scale: Float, out: UnsafeMutablePointer<Float>, ld: Int
    ) {
        precondition((1...2).contains(queries) && ld >= (n + 15) / 16 * 16)
        var p = 0
        while p < n {
            let block = kt + p * hd
            if queries == 1 {
                kronos_scores16(1, q, qStride, hd, block, 16, scale, out + p, ld)
            } else {
                kronos_scores16(2, q, qStride, hd, block, 16, scale, out + p, ld)
            }
            p += 16
        }
    }

    /// kt + 16·d [16] = value d of rows[r] (r < 16: f32 rows, or f16 when `half`) for d < hd: one
    /// block of keys transposed for `scores` (kt 64-byte aligned).
    @inline(never)
    public static func transpose(
        rows: UnsafePointer<UnsafeRawPointer?>, half: Bool, headDimension hd: Int, kt: UnsafeMutablePointer<Float>
    ) {
        kronos_transpose16(rows, half ? 1 : 0, hd, kt, 16)
    }

    /// out_i [hd] (at out + i·outStride) = Σ_p w_i[p] · v_p for p < visible + i, by fused multiply-add
    /// in p order: queries (1...4) rows of weights w_i at w + i·ld, value rows v_p [hd] at v + p·ldv.
    @inline(never)
    public static func values(
        queries: Int, w: UnsafePointer<Float>, ld: Int, visible: Int, v: UnsafePointer<Float>, ldv: Int,
        headDimension hd: Int, out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        precondition((1...4).contains(queries))
        switch queries {
        case 1: kronos_values(1, w, ld, visible, v, ldv, hd, out, outStride)
        case 2: kronos_values(2, w, ld, visible, v, ldv, hd, out, outStride)
        case 3: kronos_values(3, w, ld, visible, v, ldv, hd, out, outStride)
        default: kronos_values(4, w, ld, visible, v, ldv, hd, out, outStride)
        }
    }
}
