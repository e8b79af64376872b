// Sustained throughput loops of one thread (kronos-bench peak) for AVX-512 VNNI processors: `rounds`
// rounds of 12 independent chains (CKronosHints, kronos_peak_*); each returns a value to keep.
import CKronosHints

extension VNNI {
    /// int8 multiply-adds: 12 · 64 per round (vpdpbusd zmm).
    @inline(never)
    public static func peakInt8Wide(rounds: Int, seed: Int32) -> Int32 { kronos_peak_dpbusd512(rounds, seed) }

    /// int8 multiply-adds: 12 · 32 per round (vpdpbusd ymm, the width of `gemm` and `matvec`).
    @inline(never)
    public static func peakInt8(rounds: Int, seed: Int32) -> Int32 { kronos_peak_dpbusd256(rounds, seed) }

    /// f32 fused multiply-adds: 12 · 16 per round (vfmadd zmm).
    @inline(never)
    public static func peakFloatWide(rounds: Int, seed: Float) -> Float { kronos_peak_fma512(rounds, seed) }
}
