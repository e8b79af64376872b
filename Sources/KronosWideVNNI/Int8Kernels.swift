// Int8 kernels for processors with AVX-512 VNNI: q8_0, q4_1 and q4_k weights times int8-quantized
// activations, 32 (ymm) or 64 (zmm) byte products per instruction (vpdpbusd). Compiled for AVX-512 VL / BW / VNNI
// (Package.swift), so nothing in it may run before the runtime has checked the processor
// (KronosWideEngine's `Kernels.IntegerKernels.native`, by cpuid): its kernels are never inlined into callers compiled
// for other processors, and its constants are inlinable (they compile in the caller).
//
// The arithmetic of every (weight row r, input row t) pair, whichever kernel computes it, with the
// weights' codes c, block scales d_w and minimums m_w as KronosQuant's IntegerCodes gives them:
//   acc = 0; for each 32-column block u in order:
//     I = Σ_k c[r, 32u + k] · q[t, 32u + k]        (exact in 32 bits)
//     acc = fma(Float(I), d_w[r, u] · d_x[t, u], acc)   (d_w · d_x rounded to f32 first)
//     q4_1, q4_k only: acc = fma(m_w[r, u], d_x[t, u] · Float(S[t, u]), acc)   (S: the block's Σ q)
//   y[t, r] = acc + bias[r]
// The scalar reference (KronosWideEngine, integerReferenceDot) and the portable path compute the same,
// bit for bit.
import CKronosHints
import KronosQuant

public enum VNNI {
    /// Y [inputs, ldy]: y[t·ldy + j] = row j of W . input t (+ bias[j]) for the weight rows j of
    /// 16-row groups `groups` (the last may be partial: rows < `rows` only).
    /// W: rows of x.columns values of `type` (q8_0, q4_1, q4_k), `rowBytes` apart. Each group is
    /// repacked once into `scratch` (repackedGroupBytes), then multiplied with 8 input rows at a time in
    /// 512-bit registers (kronos_vnni512_tile).
    @inline(never)
    public static func gemm(
        _ type: TensorType, weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>,
        x: Int8Activations, inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
        scratch: UnsafeMutableRawPointer
    ) {
        #if arch(x86_64)
            struct Gemm: IntegerCodesTask {
                let w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations
                let inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?
                let scratch: UnsafeMutableRawPointer
                @inline(__always) func run<C: IntegerCodes>(_: C.Type) {
                    gemmGroups(C.self, w, rowBytes, rows, groups, x, inputs, y, ldy, bias, scratch)
                }
            }
            let task = Gemm(
                w: w, rowBytes: rowBytes, rows: rows, groups: groups, x: x, inputs: inputs, y: y, ldy: ldy, bias: bias,
                scratch: scratch)
            guard type.withIntegerCodes(task) != nil else {
                preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
            }
        #else
            preconditionFailure("the VNNI kernels exist on x86-64 only")
        #endif
    }
}

#if arch(x86_64)

    /// The enum the shared integer matvec (Matvec.swift) extends in this module.
    typealias MatvecKernels = VNNI

    // Lane i: acc[i] + Σ of the 4 products a[4i + k] · b[4i + k] (unsigned x signed bytes), exact.
    @inline(__always)
    func dotBytes(_ acc: SIMD8<Int32>, _ a: SIMD32<UInt8>, _ b: SIMD32<Int8>) -> SIMD8<Int32> {
        kronos_dpbusd(acc, a, b)
    }

    @inline(__always)
    func gemmGroups<C: IntegerCodes>(
        _: C.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Int, _ groups: Range<Int>, _ x: Int8Activations,
        _ inputs: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ bias: UnsafePointer<Float>?,
        _ scratch: UnsafeMutableRawPointer
    ) {
        let blocks = x.columns / 32, nb = blocks, minimum: Int32 = C.hasMinimum ? 1 : 0
        let group = UnsafePointer<UInt8>(scratch.assumingMemoryBound(to: UInt8.self))
        for g in groups {
            let j0 = g * repackedGroupRows, count = min(repackedGroupRows, rows - j0)
            repackGroup(
                C.self, w + j0 * rowBytes, rowBytes: rowBytes, count: count, blocks: blocks, biased: true, into: scratch
            )
            // Input rows 8 at a time (zmm lanes: the group's 16 weight rows), then 4, then one by one:
            // the same arithmetic per (input, weight row) pair whatever the tile. Each tile asks for a
            // slice of the next group's stored rows, so they come from memory while this group computes
            // (in a forecast the weights stream from DRAM: without it the repack waited on them).
            let next = w + (j0 + repackedGroupRows) * rowBytes  // (past the last row: a prefetch never faults)
            let slice = (repackedGroupRows * rowBytes / max(1, (inputs + 7) / 8) + 63) / 64 * 64
            var t = 0, k = 0
            func tile(_ r: Int32) {
                if g + 1 < groups.upperBound { kronos_prefetch_slice(next, k, slice); k += 1 }
                kronos_vnni512_tile(
                    r, group, blocks, x.codes + t * x.columns, x.columns, x.scales + t * nb, x.sums + t * nb, minimum,
                    y + t * ldy + j0, ldy, count, bias.map { $0 + j0 })
                t += Int(r)
            }
            while t + 8 <= inputs { tile(8) }
            if t + 4 <= inputs { tile(4) }
            while t < inputs { tile(1) }
        }
    }

#endif
