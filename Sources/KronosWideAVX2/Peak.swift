// Kernels for x86-64-v3 processors (AVX2, FMA) that only the x86-64-v3 engine calls, after its cpuid
// check (Processor.runsNativeEngine): unlike KronosWideEngine's sources, these are not compiled a
// second time for the baseline engine, so they may use what AVX2 has and plain Swift cannot spell
// (CKronosHints' target("avx2") helpers).
import CKronosHints

public enum AVX2 {
    /// Sustained throughput loops of one thread (kronos-bench peak), `rounds` rounds of 12
    /// independent chains (CKronosHints, kronos_peak_*); each returns a value to keep.
    /// int8 multiply-adds: 12 · 32 per round (vpmaddubsw + vpmaddwd + vpaddd, ymm).
    @inline(never)
    public static func peakInt8(rounds: Int, seed: Int32) -> Int32 { kronos_peak_maddubs256(rounds, seed) }

    /// f32 fused multiply-adds: 12 · 8 per round (vfmadd ymm).
    @inline(never)
    public static func peakFloat(rounds: Int, seed: Float) -> Float { kronos_peak_fma256(rounds, seed) }
}
